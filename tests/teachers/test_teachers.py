"""Tests of the teachers: toy attribute classifier / face parser, ResNet-50 and BiSeNet loaders."""
import numpy as np
import pytest
import torch

from fe_fast.datasets.toyfaces import BINARY_ATTRIBUTES, MASK_CLASSES, ToyFaces
from fe_fast.teachers import (
    BISENET_CLASSES,
    AttributeClassifier,
    BiSeNet,
    FaceParser,
    ResNet50,
    attribute_accuracy,
    load_bisenet,
    load_celeba_resnet50,
    load_teacher,
    mean_iou,
    predict_masks,
    resample_augment,
    save_teacher,
    train_attribute_classifier,
    train_face_parser,
)


@pytest.fixture(scope="module")
def small_faces():
    ds = ToyFaces(96, size=32, seed=21)
    images, masks, _ = ds.arrays()
    return ds, images, masks


def test_attribute_classifier_training_reduces_the_loss(small_faces):
    ds, images, _ = small_faces
    torch.manual_seed(0)
    model = AttributeClassifier(width=4)
    x = torch.from_numpy(images[:8]).permute(0, 3, 1, 2).float() / 127.5 - 1
    assert model(x).shape == (8, len(BINARY_ATTRIBUTES))
    model, losses = train_attribute_classifier(images, ds.attributes, model, epochs=4, batch_size=32, lr=1e-2, seed=0)
    assert len(losses) == 12
    assert np.mean(losses[-3:]) < 0.85 * np.mean(losses[:3])
    acc = attribute_accuracy(model, images, ds.attributes)
    assert set(acc) == set(BINARY_ATTRIBUTES) and all(0.0 <= a <= 1.0 for a in acc.values())
    p = model.predict_proba(x)
    assert p.shape == (8, len(BINARY_ATTRIBUTES)) and float(p.min()) >= 0 and float(p.max()) <= 1


def test_face_parser_training_reduces_the_loss(small_faces):
    _, images, masks = small_faces
    torch.manual_seed(0)
    model = FaceParser(width=4)
    model, losses = train_face_parser(images, masks, model, epochs=8, batch_size=32, lr=1e-2, seed=0)
    assert np.mean(losses[-3:]) < 0.85 * np.mean(losses[:3])
    pred = predict_masks(model, images[:10])
    assert pred.shape == masks[:10].shape and pred.dtype == np.uint8
    x = torch.zeros(2, 3, 37, 45)  # any size: logits come back at the input size
    assert model(x).shape == (2, len(MASK_CLASSES), 37, 45)


def test_training_is_deterministic(small_faces):
    ds, images, _ = small_faces
    runs = []
    for _ in range(2):
        torch.manual_seed(5)
        model = AttributeClassifier(width=4)
        runs.append(train_attribute_classifier(images[:32], ds.attributes[:32], model, epochs=1, batch_size=16,
                                               seed=3)[1])
    assert runs[0] == runs[1]
    a = train_face_parser(images[:16], small_faces[2][:16], epochs=1, batch_size=8, seed=4)[0]
    b = train_face_parser(images[:16], small_faces[2][:16], epochs=1, batch_size=8, seed=4)[0]
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(v, w), k


def test_resample_augment_thirds_and_half_resolution_accuracy(small_faces):
    import torch.nn.functional as F

    from fe_fast.teachers.toy import _half_resolution, _select_targets, images_to_tensor

    ds, images, _ = small_faces
    x = images_to_tensor(images[:60])
    x0 = x.clone()
    out = resample_augment(x, torch.Generator().manual_seed(0))
    assert torch.equal(x, x0) and out.shape == x.shape and out.min() >= -1 and out.max() <= 1
    u = torch.rand(60, generator=torch.Generator().manual_seed(0))  # the draw that picks each image's third
    kept, halved, blurred = u < 1 / 3, (u >= 1 / 3) & (u < 2 / 3), u >= 2 / 3
    assert kept.any() and halved.any() and blurred.any()
    assert torch.equal(out[kept], x[kept])
    torch.testing.assert_close(out[halved], _half_resolution(x[halved]))
    assert not torch.allclose(out[blurred], _half_resolution(x[blurred]), atol=1e-3)  # blurred on top
    assert torch.equal(resample_augment(x, torch.Generator().manual_seed(0)), out)
    assert F.mse_loss(_half_resolution(x), x) > 1e-3  # the half-resolution path changes the faces

    torch.manual_seed(0)
    model, losses = train_attribute_classifier(images, ds.attributes, AttributeClassifier(width=4), epochs=4,
                                               batch_size=32, lr=1e-2, seed=0, augment=True)
    assert np.mean(losses[-3:]) < 0.85 * np.mean(losses[:3])
    acc = attribute_accuracy(model, images, ds.attributes, half_resolution=True)
    y = torch.from_numpy(_select_targets(ds.attributes.astype(np.float32), model.attributes))
    with torch.no_grad():
        expected = ((model(_half_resolution(images_to_tensor(images))) > 0).float() == y).float().mean(0)
    assert list(acc) == list(model.attributes)
    np.testing.assert_allclose(list(acc.values()), expected.numpy(), atol=1e-6)


def test_mean_iou():
    t = np.array([[0, 0, 1, 1], [2, 2, 2, 2]])
    p = np.array([[0, 1, 1, 1], [2, 2, 2, 0]])
    miou, ious = mean_iou(p, t)
    assert ious == {"background": pytest.approx(1 / 3), "skin": pytest.approx(2 / 3), "hair": pytest.approx(3 / 4)}
    assert miou == pytest.approx((1 / 3 + 2 / 3 + 3 / 4) / 3)
    assert mean_iou(t, t)[0] == 1.0


def test_save_and_load_toy_teachers(tmp_path):
    torch.manual_seed(1)
    clf, par = AttributeClassifier(attributes=("smiling", "eyeglasses"), width=4).eval(), FaceParser(width=4).eval()
    save_teacher(clf, tmp_path / "t" / "attribute_classifier.pt", metrics={"accuracy": {"smiling": 0.5}})
    save_teacher(par, tmp_path / "t" / "face_parser.pt")
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    clf2 = load_teacher(tmp_path / "t", kind="attribute_classifier")
    par2 = load_teacher(tmp_path / "t" / "face_parser.pt")
    assert isinstance(clf2, AttributeClassifier) and clf2.attributes == ("smiling", "eyeglasses")
    assert torch.equal(clf(x), clf2(x)) and torch.equal(par(x), par2(x))
    assert clf2.metrics["accuracy"]["smiling"] == 0.5
    with pytest.raises(ValueError, match="not a face_parser"):
        load_teacher(tmp_path / "t" / "attribute_classifier.pt", kind="face_parser")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_teacher(tmp_path / "nowhere.pt")
    with pytest.raises(ValueError, match="kind"):
        load_teacher(tmp_path / "t")


def test_bad_teacher_arguments():
    with pytest.raises(ValueError, match="attributes"):
        AttributeClassifier(attributes=("hat",))
    with pytest.raises(ValueError, match="images must be"):
        AttributeClassifier(width=4)(torch.zeros(1, 1, 32, 32))
    with pytest.raises(ValueError, match="at least 16"):
        FaceParser(width=4)(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="uint8"):
        train_face_parser(np.zeros((2, 32, 32, 3), np.float32), np.zeros((2, 32, 32), np.uint8))
    with pytest.raises(ValueError, match="mask values"):
        train_face_parser(np.zeros((2, 32, 32, 3), np.uint8), np.full((2, 32, 32), 12, np.uint8),
                          FaceParser(width=4))


def test_resnet50_matches_torchvision_layout():
    sd = ResNet50(num_classes=40).state_dict()
    n_params = sum(v.numel() for k, v in sd.items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
    assert n_params == 23_589_992  # torchvision resnet50: 25,557,032 with a 1000-way fc
    assert len(sd) == 320
    assert sd["layer1.0.downsample.0.weight"].shape == (256, 64, 1, 1)
    assert sd["layer2.0.conv2.weight"].shape == (128, 128, 3, 3)
    assert sd["layer4.2.bn3.running_var"].shape == (2048,)
    assert sd["fc.weight"].shape == (40, 2048)


def test_celeba_resnet50_loader(tmp_path):
    path = tmp_path / "celeba_resnet50.pth"
    with pytest.raises(FileNotFoundError, match="celeba_resnet50.pth"):
        load_celeba_resnet50(path)
    torch.manual_seed(0)
    net = ResNet50(num_classes=40, width=4).eval()
    torch.save({"state_dict": {"module." + k: v for k, v in net.state_dict().items()}}, path)
    model = load_celeba_resnet50(path, width=4, input_size=64)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    ref = net(((torch.nn.functional.interpolate(x, size=(64, 64), mode="bilinear") + 1) / 2
               - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
    assert torch.allclose(model(x), ref, atol=1e-5)
    assert model.attributes[31] == "Smiling" and len(model.attributes) == 40
    bad = tmp_path / "bad.pth"
    torch.save({"fc.weight": torch.zeros(40, 16)}, bad)
    with pytest.raises(ValueError, match="missing"):
        load_celeba_resnet50(bad, width=4)


def test_bisenet_loader(tmp_path):
    path = tmp_path / "79999_iter.pth"
    with pytest.raises(FileNotFoundError, match="79999_iter.pth"):
        load_bisenet(path)
    full = BiSeNet(19).state_dict()
    assert len(full) == 191 and full["cp.resnet.layer4.1.conv2.weight"].shape == (512, 512, 3, 3)
    assert full["conv_out.conv_out.weight"].shape == (19, 256, 1, 1) and full["ffm.conv1.weight"].shape == (64, 256, 1, 1)
    torch.manual_seed(0)
    net = BiSeNet(19, width=8).eval()
    torch.save(net.state_dict(), path)
    parser = load_bisenet(path, width=8, input_size=64)
    x = torch.rand(2, 3, 48, 48) * 2 - 1
    out = parser(x)
    assert out.shape == (2, len(BISENET_CLASSES), 48, 48)
    toy = parser.toy_logits(x)
    assert toy.shape == (2, len(MASK_CLASSES), 48, 48)
    assert torch.isinf(toy[:, MASK_CLASSES.index("beard")]).all()
    sd = net.state_dict()
    sd.pop("ffm.conv1.weight")
    torch.save(sd, path)
    with pytest.raises(ValueError, match="ffm.conv1.weight"):
        load_bisenet(path, width=8)


def _triangle_resize(n_in: int, n_out: int) -> torch.Tensor:
    """The documented resize along one axis, written out: output pixel i (centre (i + 0.5) *
    n_in / n_out in input pixels) averages the input pixels j (centres j + 0.5) with weights
    max(0, 1 - |d| / s), s = max(1, n_in / n_out), normalised to sum 1. Float64 [n_out, n_in]."""
    scale = n_in / n_out
    out_c = (torch.arange(n_out, dtype=torch.float64) + 0.5) * scale
    in_c = torch.arange(n_in, dtype=torch.float64) + 0.5
    w = (1 - (in_c[None] - out_c[:, None]).abs() / max(scale, 1.0)).clamp(min=0)
    return w / w.sum(1, keepdim=True)


def _resize_by_hand(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    My, Mx = _triangle_resize(x.shape[-2], h), _triangle_resize(x.shape[-1], w)
    return torch.einsum("yi,bcij,xj->bcyx", My, x.double(), Mx).to(x.dtype)


_MEAN, _STD = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def test_teachers_take_a_1024_generator_image_through_the_documented_resize(tmp_path):
    import torch.nn.functional as F

    from fe_fast.teachers import resize_for_teacher

    x = torch.rand(1, 3, 1024, 1024, generator=torch.Generator().manual_seed(3)) * 2 - 1
    x0 = x.clone()
    by_hand = _resize_by_hand(x.double(), 224, 224)
    torch.testing.assert_close(resize_for_teacher(x.double(), 224), by_hand, atol=1e-12, rtol=0)
    by_hand = by_hand.float()
    torch.testing.assert_close(resize_for_teacher(x, 224), by_hand, atol=5e-5, rtol=0)  # float32 sums
    # the antialiasing matters: plain bilinear (2x2 samples per output pixel) is far from it
    naive = F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False)
    assert float((naive - by_hand).abs().mean()) > 0.1

    torch.manual_seed(0)
    net = ResNet50(num_classes=40, width=4).eval()
    path = tmp_path / "celeba_resnet50.pth"
    torch.save(net.state_dict(), path)
    model = load_celeba_resnet50(path, width=4)  # the default input size, 224
    with torch.no_grad():
        got = model(x)
        ref = net(((by_hand + 1) / 2 - _MEAN) / _STD)
    assert got.shape == (1, 40)
    torch.testing.assert_close(got, ref, atol=1e-3, rtol=1e-3)
    assert torch.equal(x, x0)
    # differentiable, as the editing methods need
    xg = x[:1, :, :256, :256].clone().requires_grad_()
    model(xg)[:, 31].sum().backward()
    assert xg.grad is not None and torch.isfinite(xg.grad).all() and float(xg.grad.abs().sum()) > 0

    torch.manual_seed(1)
    bnet = BiSeNet(19, width=8).eval()
    bpath = tmp_path / "79999_iter.pth"
    torch.save(bnet.state_dict(), bpath)
    parser = load_bisenet(bpath, width=8)  # the default input size, 512
    with torch.no_grad():
        out = parser(x)
        small = bnet(((_resize_by_hand(x, 512, 512) + 1) / 2 - _MEAN) / _STD)[0]
    assert out.shape == (1, len(BISENET_CLASSES), 1024, 1024)
    # the logits come back to 1024 through the same resize (four classes checked by hand)
    torch.testing.assert_close(out[:, :4], _resize_by_hand(small[:, :4], 1024, 1024), atol=1e-3, rtol=1e-3)


def test_resize_for_teacher_arguments():
    from fe_fast.teachers import resize_for_teacher

    x = torch.zeros(1, 3, 8, 8)
    assert resize_for_teacher(x, 8) is x and resize_for_teacher(x, (4, 6)).shape == (1, 3, 4, 6)
    with pytest.raises(ValueError, match="x must be"):
        resize_for_teacher(torch.zeros(3, 8, 8), 4)
    for bad in (0, 2.5, "64", (4,), (4, 0), (4.0, 4), None, True):
        with pytest.raises(ValueError, match="size must be a positive int or"):
            resize_for_teacher(x, bad)
    assert resize_for_teacher(x, torch.Size([4, 6])).shape == (1, 3, 4, 6)
