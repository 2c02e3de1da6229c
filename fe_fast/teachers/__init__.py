"""Teachers: networks that name what an image shows, used to label StyleGAN style channels
(thesis ch. 6: a CelebA ResNet-50 attribute teacher and a BiSeNet region teacher).

- :mod:`fe_fast.teachers.toy`: :class:`AttributeClassifier` and :class:`FaceParser`, trained on
  the procedural faces of :mod:`fe_fast.datasets.toyfaces`, with trainers, metrics and
  save/load;
- :mod:`fe_fast.teachers.resnet50`: a torchvision-compatible ResNet-50 and a loader for a
  user's 40-attribute CelebA checkpoint;
- :mod:`fe_fast.teachers.bisenet`: the face-parsing BiSeNet (ResNet-18 context path) and a
  loader for a user's 19-class CelebAMask-HQ checkpoint;
- :mod:`fe_fast.teachers.preprocess`: :func:`resize_for_teacher`, the one resize (whole frame,
  antialiased bilinear) that brings a generator's images of any size to those two teachers'
  input size.
"""
from fe_fast.teachers.bisenet import BISENET_CLASSES, BISENET_TO_TOY, BiSeNet, BiSeNetParser, load_bisenet
from fe_fast.teachers.preprocess import resize_for_teacher
from fe_fast.teachers.resnet50 import CELEBA_ATTRIBUTES, CelebAResNet50, ResNet50, load_celeba_resnet50
from fe_fast.teachers.toy import (
    ATTRIBUTE_CLASSIFIER_FILE,
    FACE_PARSER_FILE,
    AttributeClassifier,
    FaceParser,
    attribute_accuracy,
    load_teacher,
    mean_iou,
    predict_masks,
    resample_augment,
    save_teacher,
    train_attribute_classifier,
    train_face_parser,
)

__all__ = [
    "ATTRIBUTE_CLASSIFIER_FILE", "FACE_PARSER_FILE", "AttributeClassifier", "FaceParser", "attribute_accuracy",
    "load_teacher", "mean_iou", "predict_masks", "resample_augment", "save_teacher", "train_attribute_classifier",
    "train_face_parser",
    "BISENET_CLASSES", "BISENET_TO_TOY", "BiSeNet", "BiSeNetParser", "load_bisenet",
    "CELEBA_ATTRIBUTES", "CelebAResNet50", "ResNet50", "load_celeba_resnet50", "resize_for_teacher",
]
