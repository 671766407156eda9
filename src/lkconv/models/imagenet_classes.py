"""The 1000 ImageNet-1k class names in index order (the short names of the usual class-index table).

Index i is the class of output i of every ImageNet-1k classifier (the order of the sorted WordNet ids of the
ILSVRC-2012 set). Two short names occur twice in the usual table; here they carry their second WordNet lemma:
134 "crane (bird)" / 517 "crane (machine)" and 638 "maillot" / 639 "maillot (tank suit)".
"""

from __future__ import annotations

__all__ = ["IMAGENET_1K_CLASSES", "imagenet_class_names"]

IMAGENET_1K_CLASSES: tuple[str, ...] = (
    'tench', 'goldfish', 'great white shark', 'tiger shark', 'hammerhead', 'electric ray', 'stingray',  # 0
    'cock', 'hen', 'ostrich', 'brambling', 'goldfinch', 'house finch', 'junco', 'indigo bunting', 'robin',  # 7
    'bulbul', 'jay', 'magpie', 'chickadee', 'water ouzel', 'kite', 'bald eagle', 'vulture',  # 16
    'great grey owl', 'European fire salamander', 'common newt', 'eft', 'spotted salamander', 'axolotl',  # 24
    'bullfrog', 'tree frog', 'tailed frog', 'loggerhead', 'leatherback turtle', 'mud turtle', 'terrapin',  # 30
    'box turtle', 'banded gecko', 'common iguana', 'American chameleon', 'whiptail', 'agama',  # 37
    'frilled lizard', 'alligator lizard', 'Gila monster', 'green lizard', 'African chameleon',  # 43
    'Komodo dragon', 'African crocodile', 'American alligator', 'triceratops', 'thunder snake',  # 48
    'ringneck snake', 'hognose snake', 'green snake', 'king snake', 'garter snake', 'water snake',  # 53
    'vine snake', 'night snake', 'boa constrictor', 'rock python', 'Indian cobra', 'green mamba',  # 59
    'sea snake', 'horned viper', 'diamondback', 'sidewinder', 'trilobite', 'harvestman', 'scorpion',  # 65
    'black and gold garden spider', 'barn spider', 'garden spider', 'black widow', 'tarantula',  # 72
    'wolf spider', 'tick', 'centipede', 'black grouse', 'ptarmigan', 'ruffed grouse', 'prairie chicken',  # 77
    'peacock', 'quail', 'partridge', 'African grey', 'macaw', 'sulphur-crested cockatoo', 'lorikeet',  # 84
    'coucal', 'bee eater', 'hornbill', 'hummingbird', 'jacamar', 'toucan', 'drake',  # 91
    'red-breasted merganser', 'goose', 'black swan', 'tusker', 'echidna', 'platypus', 'wallaby', 'koala',  # 98
    'wombat', 'jellyfish', 'sea anemone', 'brain coral', 'flatworm', 'nematode', 'conch', 'snail',  # 106
    'slug', 'sea slug', 'chiton', 'chambered nautilus', 'Dungeness crab', 'rock crab', 'fiddler crab',  # 114
    'king crab', 'American lobster', 'spiny lobster', 'crayfish', 'hermit crab', 'isopod', 'white stork',  # 121
    'black stork', 'spoonbill', 'flamingo', 'little blue heron', 'American egret', 'bittern',  # 128
    'crane (bird)', 'limpkin', 'European gallinule', 'American coot', 'bustard', 'ruddy turnstone',  # 134
    'red-backed sandpiper', 'redshank', 'dowitcher', 'oystercatcher', 'pelican', 'king penguin',  # 140
    'albatross', 'grey whale', 'killer whale', 'dugong', 'sea lion', 'Chihuahua', 'Japanese spaniel',  # 146
    'Maltese dog', 'Pekinese', 'Shih-Tzu', 'Blenheim spaniel', 'papillon', 'toy terrier',  # 153
    'Rhodesian ridgeback', 'Afghan hound', 'basset', 'beagle', 'bloodhound', 'bluetick',  # 159
    'black-and-tan coonhound', 'Walker hound', 'English foxhound', 'redbone', 'borzoi',  # 165
    'Irish wolfhound', 'Italian greyhound', 'whippet', 'Ibizan hound', 'Norwegian elkhound',  # 170
    'otterhound', 'Saluki', 'Scottish deerhound', 'Weimaraner', 'Staffordshire bullterrier',  # 175
    'American Staffordshire terrier', 'Bedlington terrier', 'Border terrier', 'Kerry blue terrier',  # 180
    'Irish terrier', 'Norfolk terrier', 'Norwich terrier', 'Yorkshire terrier',  # 184
    'wire-haired fox terrier', 'Lakeland terrier', 'Sealyham terrier', 'Airedale', 'cairn',  # 188
    'Australian terrier', 'Dandie Dinmont', 'Boston bull', 'miniature schnauzer', 'giant schnauzer',  # 193
    'standard schnauzer', 'Scotch terrier', 'Tibetan terrier', 'silky terrier',  # 198
    'soft-coated wheaten terrier', 'West Highland white terrier', 'Lhasa', 'flat-coated retriever',  # 202
    'curly-coated retriever', 'golden retriever', 'Labrador retriever', 'Chesapeake Bay retriever',  # 206
    'German short-haired pointer', 'vizsla', 'English setter', 'Irish setter', 'Gordon setter',  # 210
    'Brittany spaniel', 'clumber', 'English springer', 'Welsh springer spaniel', 'cocker spaniel',  # 215
    'Sussex spaniel', 'Irish water spaniel', 'kuvasz', 'schipperke', 'groenendael', 'malinois', 'briard',  # 220
    'kelpie', 'komondor', 'Old English sheepdog', 'Shetland sheepdog', 'collie', 'Border collie',  # 227
    'Bouvier des Flandres', 'Rottweiler', 'German shepherd', 'Doberman', 'miniature pinscher',  # 233
    'Greater Swiss Mountain dog', 'Bernese mountain dog', 'Appenzeller', 'EntleBucher', 'boxer',  # 238
    'bull mastiff', 'Tibetan mastiff', 'French bulldog', 'Great Dane', 'Saint Bernard', 'Eskimo dog',  # 243
    'malamute', 'Siberian husky', 'dalmatian', 'affenpinscher', 'basenji', 'pug', 'Leonberg',  # 249
    'Newfoundland', 'Great Pyrenees', 'Samoyed', 'Pomeranian', 'chow', 'keeshond', 'Brabancon griffon',  # 256
    'Pembroke', 'Cardigan', 'toy poodle', 'miniature poodle', 'standard poodle', 'Mexican hairless',  # 263
    'timber wolf', 'white wolf', 'red wolf', 'coyote', 'dingo', 'dhole', 'African hunting dog', 'hyena',  # 269
    'red fox', 'kit fox', 'Arctic fox', 'grey fox', 'tabby', 'tiger cat', 'Persian cat', 'Siamese cat',  # 277
    'Egyptian cat', 'cougar', 'lynx', 'leopard', 'snow leopard', 'jaguar', 'lion', 'tiger', 'cheetah',  # 285
    'brown bear', 'American black bear', 'ice bear', 'sloth bear', 'mongoose', 'meerkat', 'tiger beetle',  # 294
    'ladybug', 'ground beetle', 'long-horned beetle', 'leaf beetle', 'dung beetle', 'rhinoceros beetle',  # 301
    'weevil', 'fly', 'bee', 'ant', 'grasshopper', 'cricket', 'walking stick', 'cockroach', 'mantis',  # 307
    'cicada', 'leafhopper', 'lacewing', 'dragonfly', 'damselfly', 'admiral', 'ringlet', 'monarch',  # 316
    'cabbage butterfly', 'sulphur butterfly', 'lycaenid', 'starfish', 'sea urchin', 'sea cucumber',  # 324
    'wood rabbit', 'hare', 'Angora', 'hamster', 'porcupine', 'fox squirrel', 'marmot', 'beaver',  # 330
    'guinea pig', 'sorrel', 'zebra', 'hog', 'wild boar', 'warthog', 'hippopotamus', 'ox',  # 338
    'water buffalo', 'bison', 'ram', 'bighorn', 'ibex', 'hartebeest', 'impala', 'gazelle',  # 346
    'Arabian camel', 'llama', 'weasel', 'mink', 'polecat', 'black-footed ferret', 'otter', 'skunk',  # 354
    'badger', 'armadillo', 'three-toed sloth', 'orangutan', 'gorilla', 'chimpanzee', 'gibbon', 'siamang',  # 362
    'guenon', 'patas', 'baboon', 'macaque', 'langur', 'colobus', 'proboscis monkey', 'marmoset',  # 370
    'capuchin', 'howler monkey', 'titi', 'spider monkey', 'squirrel monkey', 'Madagascar cat', 'indri',  # 378
    'Indian elephant', 'African elephant', 'lesser panda', 'giant panda', 'barracouta', 'eel', 'coho',  # 385
    'rock beauty', 'anemone fish', 'sturgeon', 'gar', 'lionfish', 'puffer', 'abacus', 'abaya',  # 392
    'academic gown', 'accordion', 'acoustic guitar', 'aircraft carrier', 'airliner', 'airship', 'altar',  # 400
    'ambulance', 'amphibian', 'analog clock', 'apiary', 'apron', 'ashcan', 'assault rifle', 'backpack',  # 407
    'bakery', 'balance beam', 'balloon', 'ballpoint', 'Band Aid', 'banjo', 'bannister', 'barbell',  # 415
    'barber chair', 'barbershop', 'barn', 'barometer', 'barrel', 'barrow', 'baseball', 'basketball',  # 423
    'bassinet', 'bassoon', 'bathing cap', 'bath towel', 'bathtub', 'beach wagon', 'beacon', 'beaker',  # 431
    'bearskin', 'beer bottle', 'beer glass', 'bell cote', 'bib', 'bicycle-built-for-two', 'bikini',  # 439
    'binder', 'binoculars', 'birdhouse', 'boathouse', 'bobsled', 'bolo tie', 'bonnet', 'bookcase',  # 446
    'bookshop', 'bottlecap', 'bow', 'bow tie', 'brass', 'brassiere', 'breakwater', 'breastplate',  # 454
    'broom', 'bucket', 'buckle', 'bulletproof vest', 'bullet train', 'butcher shop', 'cab', 'caldron',  # 462
    'candle', 'cannon', 'canoe', 'can opener', 'cardigan', 'car mirror', 'carousel', "carpenter's kit",  # 470
    'carton', 'car wheel', 'cash machine', 'cassette', 'cassette player', 'castle', 'catamaran',  # 478
    'CD player', 'cello', 'cellular telephone', 'chain', 'chainlink fence', 'chain mail', 'chain saw',  # 485
    'chest', 'chiffonier', 'chime', 'china cabinet', 'Christmas stocking', 'church', 'cinema', 'cleaver',  # 492
    'cliff dwelling', 'cloak', 'clog', 'cocktail shaker', 'coffee mug', 'coffeepot', 'coil',  # 500
    'combination lock', 'computer keyboard', 'confectionery', 'container ship', 'convertible',  # 507
    'corkscrew', 'cornet', 'cowboy boot', 'cowboy hat', 'cradle', 'crane (machine)', 'crash helmet',  # 512
    'crate', 'crib', 'Crock Pot', 'croquet ball', 'crutch', 'cuirass', 'dam', 'desk', 'desktop computer',  # 519
    'dial telephone', 'diaper', 'digital clock', 'digital watch', 'dining table', 'dishrag',  # 528
    'dishwasher', 'disk brake', 'dock', 'dogsled', 'dome', 'doormat', 'drilling platform', 'drum',  # 534
    'drumstick', 'dumbbell', 'Dutch oven', 'electric fan', 'electric guitar', 'electric locomotive',  # 542
    'entertainment center', 'envelope', 'espresso maker', 'face powder', 'feather boa', 'file',  # 548
    'fireboat', 'fire engine', 'fire screen', 'flagpole', 'flute', 'folding chair', 'football helmet',  # 554
    'forklift', 'fountain', 'fountain pen', 'four-poster', 'freight car', 'French horn', 'frying pan',  # 561
    'fur coat', 'garbage truck', 'gasmask', 'gas pump', 'goblet', 'go-kart', 'golf ball', 'golfcart',  # 568
    'gondola', 'gong', 'gown', 'grand piano', 'greenhouse', 'grille', 'grocery store', 'guillotine',  # 576
    'hair slide', 'hair spray', 'half track', 'hammer', 'hamper', 'hand blower', 'hand-held computer',  # 584
    'handkerchief', 'hard disc', 'harmonica', 'harp', 'harvester', 'hatchet', 'holster', 'home theater',  # 591
    'honeycomb', 'hook', 'hoopskirt', 'horizontal bar', 'horse cart', 'hourglass', 'iPod', 'iron',  # 599
    "jack-o'-lantern", 'jean', 'jeep', 'jersey', 'jigsaw puzzle', 'jinrikisha', 'joystick', 'kimono',  # 607
    'knee pad', 'knot', 'lab coat', 'ladle', 'lampshade', 'laptop', 'lawn mower', 'lens cap',  # 615
    'letter opener', 'library', 'lifeboat', 'lighter', 'limousine', 'liner', 'lipstick', 'Loafer',  # 623
    'lotion', 'loudspeaker', 'loupe', 'lumbermill', 'magnetic compass', 'mailbag', 'mailbox', 'maillot',  # 631
    'maillot (tank suit)', 'manhole cover', 'maraca', 'marimba', 'mask', 'matchstick', 'maypole', 'maze',  # 639
    'measuring cup', 'medicine chest', 'megalith', 'microphone', 'microwave', 'military uniform',  # 647
    'milk can', 'minibus', 'miniskirt', 'minivan', 'missile', 'mitten', 'mixing bowl', 'mobile home',  # 653
    'Model T', 'modem', 'monastery', 'monitor', 'moped', 'mortar', 'mortarboard', 'mosque',  # 661
    'mosquito net', 'motor scooter', 'mountain bike', 'mountain tent', 'mouse', 'mousetrap',  # 669
    'moving van', 'muzzle', 'nail', 'neck brace', 'necklace', 'nipple', 'notebook', 'obelisk', 'oboe',  # 675
    'ocarina', 'odometer', 'oil filter', 'organ', 'oscilloscope', 'overskirt', 'oxcart', 'oxygen mask',  # 684
    'packet', 'paddle', 'paddlewheel', 'padlock', 'paintbrush', 'pajama', 'palace', 'panpipe',  # 692
    'paper towel', 'parachute', 'parallel bars', 'park bench', 'parking meter', 'passenger car', 'patio',  # 700
    'pay-phone', 'pedestal', 'pencil box', 'pencil sharpener', 'perfume', 'Petri dish', 'photocopier',  # 707
    'pick', 'pickelhaube', 'picket fence', 'pickup', 'pier', 'piggy bank', 'pill bottle', 'pillow',  # 714
    'ping-pong ball', 'pinwheel', 'pirate', 'pitcher', 'plane', 'planetarium', 'plastic bag',  # 722
    'plate rack', 'plow', 'plunger', 'Polaroid camera', 'pole', 'police van', 'poncho', 'pool table',  # 729
    'pop bottle', 'pot', "potter's wheel", 'power drill', 'prayer rug', 'printer', 'prison',  # 737
    'projectile', 'projector', 'puck', 'punching bag', 'purse', 'quill', 'quilt', 'racer', 'racket',  # 744
    'radiator', 'radio', 'radio telescope', 'rain barrel', 'recreational vehicle', 'reel',  # 753
    'reflex camera', 'refrigerator', 'remote control', 'restaurant', 'revolver', 'rifle',  # 759
    'rocking chair', 'rotisserie', 'rubber eraser', 'rugby ball', 'rule', 'running shoe', 'safe',  # 765
    'safety pin', 'saltshaker', 'sandal', 'sarong', 'sax', 'scabbard', 'scale', 'school bus', 'schooner',  # 772
    'scoreboard', 'screen', 'screw', 'screwdriver', 'seat belt', 'sewing machine', 'shield', 'shoe shop',  # 781
    'shoji', 'shopping basket', 'shopping cart', 'shovel', 'shower cap', 'shower curtain', 'ski',  # 789
    'ski mask', 'sleeping bag', 'slide rule', 'sliding door', 'slot', 'snorkel', 'snowmobile',  # 796
    'snowplow', 'soap dispenser', 'soccer ball', 'sock', 'solar dish', 'sombrero', 'soup bowl',  # 803
    'space bar', 'space heater', 'space shuttle', 'spatula', 'speedboat', 'spider web', 'spindle',  # 810
    'sports car', 'spotlight', 'stage', 'steam locomotive', 'steel arch bridge', 'steel drum',  # 817
    'stethoscope', 'stole', 'stone wall', 'stopwatch', 'stove', 'strainer', 'streetcar', 'stretcher',  # 823
    'studio couch', 'stupa', 'submarine', 'suit', 'sundial', 'sunglass', 'sunglasses', 'sunscreen',  # 831
    'suspension bridge', 'swab', 'sweatshirt', 'swimming trunks', 'swing', 'switch', 'syringe',  # 839
    'table lamp', 'tank', 'tape player', 'teapot', 'teddy', 'television', 'tennis ball', 'thatch',  # 846
    'theater curtain', 'thimble', 'thresher', 'throne', 'tile roof', 'toaster', 'tobacco shop',  # 854
    'toilet seat', 'torch', 'totem pole', 'tow truck', 'toyshop', 'tractor', 'trailer truck', 'tray',  # 861
    'trench coat', 'tricycle', 'trimaran', 'tripod', 'triumphal arch', 'trolleybus', 'trombone', 'tub',  # 869
    'turnstile', 'typewriter keyboard', 'umbrella', 'unicycle', 'upright', 'vacuum', 'vase', 'vault',  # 877
    'velvet', 'vending machine', 'vestment', 'viaduct', 'violin', 'volleyball', 'waffle iron',  # 885
    'wall clock', 'wallet', 'wardrobe', 'warplane', 'washbasin', 'washer', 'water bottle', 'water jug',  # 892
    'water tower', 'whiskey jug', 'whistle', 'wig', 'window screen', 'window shade', 'Windsor tie',  # 900
    'wine bottle', 'wing', 'wok', 'wooden spoon', 'wool', 'worm fence', 'wreck', 'yawl', 'yurt',  # 907
    'web site', 'comic book', 'crossword puzzle', 'street sign', 'traffic light', 'book jacket', 'menu',  # 916
    'plate', 'guacamole', 'consomme', 'hot pot', 'trifle', 'ice cream', 'ice lolly', 'French loaf',  # 923
    'bagel', 'pretzel', 'cheeseburger', 'hotdog', 'mashed potato', 'head cabbage', 'broccoli',  # 931
    'cauliflower', 'zucchini', 'spaghetti squash', 'acorn squash', 'butternut squash', 'cucumber',  # 938
    'artichoke', 'bell pepper', 'cardoon', 'mushroom', 'Granny Smith', 'strawberry', 'orange', 'lemon',  # 944
    'fig', 'pineapple', 'banana', 'jackfruit', 'custard apple', 'pomegranate', 'hay', 'carbonara',  # 952
    'chocolate sauce', 'dough', 'meat loaf', 'pizza', 'potpie', 'burrito', 'red wine', 'espresso', 'cup',  # 960
    'eggnog', 'alp', 'bubble', 'cliff', 'coral reef', 'geyser', 'lakeside', 'promontory', 'sandbar',  # 969
    'seashore', 'valley', 'volcano', 'ballplayer', 'groom', 'scuba diver', 'rapeseed', 'daisy',  # 978
    "yellow lady's slipper", 'corn', 'acorn', 'hip', 'buckeye', 'coral fungus', 'agaric', 'gyromitra',  # 986
    'stinkhorn', 'earthstar', 'hen-of-the-woods', 'bolete', 'ear', 'toilet tissue',  # 994
)


def imagenet_class_names(label_set: str, num_classes: int) -> list[str]:
    """Names for ``num_classes`` outputs of a model trained on ``label_set``: the table above for ImageNet-1k,
    ``"<label_set> #i"`` otherwise (the 21841 ImageNet-22k names are not shipped)."""
    if label_set == "imagenet-1k" and num_classes == len(IMAGENET_1K_CLASSES):
        return list(IMAGENET_1K_CLASSES)
    return [f"{label_set} #{i}" for i in range(num_classes)]
