"""Face alignment (thesis Figure 1-1): 68 3D landmarks -> head pose (HOUV or closed form)
-> FFHQ-style crop, with the inverse transform to paste an edited crop back into the photo."""
from fe_fast.align.crop import AlignedCrop, align_crop, ffhq_quad, paste_back
from fe_fast.align.face import AlignedFace, align_face
from fe_fast.align.landmarks import fan_landmarks, load_landmarks, toy_landmarks
from fe_fast.align.pose import PoseResult, estimate_pose, euler_from_rotation, frontal_template, \
    rotation_from_euler, umeyama

__all__ = ["AlignedCrop", "AlignedFace", "PoseResult", "align_crop", "align_face", "estimate_pose", "euler_from_rotation", "fan_landmarks",
           "ffhq_quad", "frontal_template", "load_landmarks", "paste_back", "rotation_from_euler",
           "toy_landmarks", "umeyama"]
