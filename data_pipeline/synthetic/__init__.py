"""Rendered people as articulated figures, written as COCO- and MPII-format datasets.

figures.py: the 3D figure, its pose and projection; render.py: scenes, the id buffer and
visibility; writers.py: the official COCO and MPII layouts.

One skeleton model gives both joint sets: a 3D figure (pelvis, spine, shoulders,
arms, legs, a round head with eyes, nose and ears) posed with plausible joint angles,
turned to any facing, projected orthographically into the image and drawn with
OpenCV as tapered limbs in painter's order.  Alongside the RGB image an id buffer
records which part of which person owns each pixel, so that a joint's visibility is
read from what was actually drawn there (another person, a nearer limb of the same
person, an occluder).

Left and right are decidable from mirror-consistent cues only: the face (eyes, nose)
versus hair on the back of the head, a button placket on the front of the shirt,
feet pointing forward, near limbs drawn over far ones and shaded brighter.  A fixed
left/right colour code would be no cue at all under flip augmentation (half of the
training crops would show it swapped), so none is used.

Layouts written (what HRNet's readers expect):

    coco root/annotations/person_keypoints_{split}.json
         root/images/{split}/{image_id:012d}.jpg
         root/person_detection_results/COCO_val2017_detections_AP_H_56_person.json
    mpii root/annot/{split}.json, root/annot/gt_valid.mat, root/images/{image:09d}.jpg

Every image is rendered from its own generator seeded by (seed, dataset, split,
index), so outputs are byte-identical for a seed and splits can be made in chunks.
"""
from data_pipeline.synthetic.figures import P, POINTS, figure_points, project, sample_pose
from data_pipeline.synthetic.render import SCENES, background, render_scene
from data_pipeline.synthetic.writers import (COCO_DETECTION_FILE, figure_points_of, image_rng,
                                             write_coco, write_mpii)

__all__ = ["COCO_DETECTION_FILE", "P", "figure_points_of", "POINTS", "SCENES", "background", "figure_points",
           "image_rng", "project", "render_scene", "sample_pose", "write_coco", "write_mpii"]
