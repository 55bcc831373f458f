import pytest

from mgr.datamodules import IMiGUEDataModule, MA52DataModule, SMGDataModule
from mgr.datamodules.online import IMiGUEOnlineDataModule, SMGOnlineDataModule
from mgr.protocols import REPORTED, SCHEMES, Protocol, literature_line, reported_for


@pytest.mark.parametrize(
    ("dm", "expected"),
    [
        (lambda r: IMiGUEDataModule(r), ("imigue", "folders")),
        (lambda r: IMiGUEDataModule(r, split_scheme="miga"), ("imigue", "miga")),
        (lambda r: SMGDataModule(r), ("smg", "miga")),
        (lambda r: SMGDataModule(r, split="official"), ("smg", "official")),
        (lambda r: SMGDataModule(r, test_subjects=[39, 40]), ("smg", "custom")),
        (lambda r: MA52DataModule(r), ("ma52", "official")),
    ],
)
def test_datamodules_name_their_protocol(tmp_path, dm, expected):
    protocol = dm(tmp_path).protocol("test")
    assert (protocol.dataset, protocol.scheme, protocol.split) == (*expected, "test")
    assert protocol.task == "classification"


def test_online_datamodules_name_an_online_protocol(tmp_path):
    smg = SMGOnlineDataModule(tmp_path, split="official").protocol("val")
    assert (smg.dataset, smg.scheme, smg.task) == ("smg", "official", "online")
    imigue = IMiGUEOnlineDataModule(tmp_path, split_scheme="miga").protocol("test")
    assert (imigue.dataset, imigue.scheme) == ("imigue", "miga")


def test_every_scheme_a_datamodule_offers_is_described():
    # The literals of the datamodules' options, against the descriptions.
    offered = {("imigue", s) for s in ("folders", "miga", "subjects")}
    offered |= {("smg", s) for s in ("miga", "official")} | {("ma52", "official")}
    assert offered == set(SCHEMES)


def test_describe_and_round_trip():
    p = Protocol("imigue", "subjects", "test")
    text = p.describe()
    assert text.startswith("iMiGUE, split scheme 'subjects' (the paper's cross-subject")
    assert text.endswith("split 'test'")
    assert Protocol.from_dict(p.as_dict()) == p
    assert "online detection" in Protocol("smg", "miga", "test", task="online").describe()
    assert Protocol(None, None, "val").describe().startswith("unknown dataset")


def test_literature_line_marks_what_is_comparable():
    ma52 = literature_line(Protocol("ma52", "official", "test"))
    assert "58.88" in ma52 and "65.64" in ma52 and "[same protocol]" in ma52
    assert "[other protocol]" in literature_line(Protocol("ma52", "official", "val"))
    imigue = literature_line(Protocol("imigue", "folders", "test"))
    assert "73.213" in imigue and "[not comparable]" in imigue
    assert literature_line(Protocol("synth", None, "test")) is None


def test_reported_results_cover_the_issue_seeds():
    values = {(r.dataset, r.task, r.value) for r in REPORTED}
    for seed in [
        ("smg", "classification", 78.13),
        ("imigue", "classification", 62.58),
        ("imigue", "classification", 73.213),
        ("imigue", "classification", 68.13),
        ("imigue", "classification", 74.419),
        ("smg", "online", 38.03),
        ("ma52", "classification", 58.88),
        ("ma52", "classification", 65.64),
    ]:
        assert seed in values
    assert all(r.scheme is None or (r.dataset, r.scheme) in SCHEMES for r in REPORTED)
    assert reported_for("smg", "online")[0].metric == "online_f1"


def test_synthmg_runs_are_never_the_same_protocol():
    real = Protocol("ma52", "official", "test")
    synth = Protocol("ma52", "official", "test", synthetic=True)
    assert "[same protocol]" in literature_line(real)
    assert "same protocol" not in literature_line(synth)
    assert synth.describe().startswith("SynthMG in the MA-52 layout")
    assert Protocol.from_dict(synth.as_dict()) == synth
