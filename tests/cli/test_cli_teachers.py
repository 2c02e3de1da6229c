"""Test of ``fe-fast teachers train`` at a tiny size."""
import pytest

from fe_fast.cli import main
from fe_fast.teachers import AttributeClassifier, FaceParser, load_teacher


def test_teachers_train_tiny(tmp_path, capsys):
    out = tmp_path / "teachers"
    rc = main(["teachers", "train", "--out", str(out), "--size", "24", "--n", "48", "--n-val", "16",
               "--epochs", "1", "--parser-epochs", "1", "--width", "4", "--seed", "1", "--no-progress",
               "--augment"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "held-out accuracy" in text and "smiling" in text and "mean IoU" in text and "glasses" in text
    clf = load_teacher(out, kind="attribute_classifier")
    par = load_teacher(out, kind="face_parser")
    assert isinstance(clf, AttributeClassifier) and isinstance(par, FaceParser)
    assert clf.metrics["size"] == 24 and "accuracy" in clf.metrics and "mean_iou" in par.metrics
    assert "through half resolution" in text and clf.metrics["augment"] is True
    assert set(clf.metrics["accuracy_half"]) == set(clf.metrics["accuracy"])


@pytest.mark.parametrize("args, msg", [(["--size", "8"], "--size"), (["--n", "0"], "--n")])
def test_teachers_train_bad_input(tmp_path, capsys, args, msg):
    rc = main(["teachers", "train", "--out", str(tmp_path / "o"), "--no-progress", *args])
    assert rc == 2
    assert msg in capsys.readouterr().err
