import json

from lkconv.cli import main


def test_info_prints_counts_and_stage_table(capsys):
    assert main(["info", "unireplknet_a", "--img-size", "224"]) == 0
    out = capsys.readouterr().out
    assert "4.649M" in out and "4.437M" in out and "deploy 0.640G" in out
    assert "13,13,13,13,13,13" in out


def test_info_json_and_other_size(capsys):
    assert main(["info", "unireplknet_t", "--img-size", "128", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert round(info["params_deploy"] / 1e6, 3) == 31.038
    assert [s["lark"] for s in info["stages"]] == [0, 3, 9, 3]
    assert info["macs_deploy"] < 4.9e9 / 2


def test_unknown_model_is_a_clear_error(capsys):
    assert main(["info", "unireplknet_q"]) == 2
    assert "unknown model 'unireplknet_q'" in capsys.readouterr().err


def test_list_models(capsys):
    assert main(["list-models", "unireplknet_*"]) == 0
    assert capsys.readouterr().out.split()[:2] == ["unireplknet_a", "unireplknet_f"]


def test_profile_command_writes_json_and_plot(tmp_path, capsys):
    assert main(["profile", "--model", "unireplknet_a", "--img-size", "64", "--repeats", "1", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "waterline" in out and "efficiency" in out and "stages.2.5" in out
    data = json.loads((tmp_path / "profile.json").read_text())
    assert data["macs"] > 0 and data["layers"] and (tmp_path / "profile.png").is_file()


def test_data_list(capsys):
    assert main(["data", "list"]) == 0
    assert "fashion-mnist" in capsys.readouterr().out


def test_info_works_for_every_registered_model():
    import lkconv
    from lkconv.models.describe import describe_model

    for name in lkconv.list_models():
        info = describe_model(name, img_size=64)
        assert info["params_train"] >= info["params_deploy"] > 0 and info["macs_deploy"] > 0, name


def test_erf_and_filters_commands(tmp_path, capsys):
    assert main(["erf", "--model", "unireplknet_a", "inception_next_atto", "--input-size", "64", "--num-inputs", "1",
                 "--out", str(tmp_path / "erf")]) == 0
    out = capsys.readouterr().out
    assert "99%: side" in out
    data = json.loads((tmp_path / "erf" / "erf.json").read_text())
    assert set(data) == {"unireplknet_a", "inception_next_atto"}
    assert (tmp_path / "erf" / "erf_comparison.png").is_file()
    assert main(["filters", "--model", "unireplknet_a", "--min-kernel-size", "5", "--out", str(tmp_path / "f")]) == 0
    rows = json.loads((tmp_path / "f" / "filters.json").read_text())
    assert len(rows) == 10 and rows[0]["name"] == "stages.1.0.dwconv.lk_origin"  # the 10 fused LarK kernels of A
    assert (tmp_path / "f" / "kernels.png").is_file()


def test_shape_bias_command_needs_stimuli(tmp_path, capsys):
    assert main(["shape-bias", "--model", "unireplknet_a", "--checkpoint", str(tmp_path / "none.pth"),
                 "--data", str(tmp_path)]) == 2
