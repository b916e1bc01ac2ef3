"""[Metrics] Map= and YAML `metrics:`: the map values a unit asks the daemon to export."""

from bpfunits.units.model import MapMetric
from bpfunits.units.search import load_units
from tests.unitfiles import write

BODY = "[Program]\nObject=a.o\n[Attach]\nHook=xdp\nInterfaces=veth0\n"


def test_ini_and_yaml_spellings_give_the_same_metrics(tmp_path):
    write(tmp_path / "ini", "a.unit", BODY + "[Metrics]\nMap=drops 0\nMap=hits   0x10 gauge\n")
    write(tmp_path / "ini", "a.d/more.conf", "[Metrics]\nMap=seen 3 counter\n")
    write(tmp_path / "yaml", "a.yaml", "program: {object: a.o}\nattach: {hook: xdp, interfaces: veth0}\n"
          "metrics:\n  - {map: drops, key: 0}\n  - {map: hits, key: 0x10, type: gauge}\n  - {map: seen, key: 3, type: counter}\n")
    want = (MapMetric("drops", 0, None), MapMetric("hits", 16, "gauge"), MapMetric("seen", 3, "counter"))
    for folder in ("ini", "yaml"):
        loaded = load_units((tmp_path / folder,))
        assert loaded.diagnostics == [] and loaded.units["a"].metrics == want


def test_an_empty_map_assignment_resets_the_list(tmp_path):
    write(tmp_path, "a.unit", BODY + "[Metrics]\nMap=drops 0\n")
    write(tmp_path, "a.d/none.conf", "[Metrics]\nMap=\n")
    assert load_units((tmp_path,)).units["a"].metrics == ()


def test_wrong_metrics_are_errors_with_their_line(tmp_path):
    for text, line in ((BODY + "[Metrics]\nMap=drops\n", 7), (BODY + "[Metrics]\nMap=drops x\n", 7),
                       (BODY + "[Metrics]\nMap=drops 0 histogram\n", 7)):
        write(tmp_path, "a.unit", text)
        result = load_units((tmp_path,))
        assert "a" not in result.units
        assert [str(d) for d in result.diagnostics] == [
            f"{tmp_path}/a.unit:{line}: error: unit a: Map={text.split('Map=')[1].strip()}: must be NAME KEY "
            "[counter|gauge]: a map name, an integer key, and the kind of metric"]
    (tmp_path / "a.unit").unlink()
    write(tmp_path, "a.yaml", "program: {object: a.o}\nattach: {hook: xdp, interfaces: veth0}\nmetrics:\n  - {map: x}\n")
    result = load_units((tmp_path,))
    assert [str(d) for d in result.diagnostics] == [
        f"{tmp_path}/a.yaml:4: error: unit a: 'metrics' items are mappings of map, key and optionally type "
        "(counter or gauge)"]
