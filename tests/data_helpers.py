"""Tiny official-layout datasets for the data-pipeline tests (written in milliseconds)."""
from __future__ import annotations

import json
import os

import cv2
import numpy as np


def texture(rng, width, height) -> np.ndarray:
    """Smooth random RGB texture (uint8), so bilinear warps are comparable to a grey level."""
    small = rng.integers(0, 256, (max(2, height // 8), max(2, width // 8), 3)).astype(np.uint8)
    img = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    return img


def write_jpeg(path, rgb: np.ndarray, quality=95):
    cv2.imwrite(str(path), rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])


def write_coco(root, split="train2017", num_images=6, people=2, size=(64, 48), seed=0,
               detections=False, nested=True):
    """COCO keypoints layout; people per image with random boxes and 17 keypoints inside."""
    rng = np.random.default_rng(seed)
    w, h = size
    img_dir = os.path.join(root, "images", split) if nested else os.path.join(root, split)
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
    images, anns, dets = [], [], []
    for i in range(num_images):
        image_id = 1000 + i
        name = f"{image_id:012d}.jpg"
        write_jpeg(os.path.join(img_dir, name), texture(rng, w, h))
        images.append({"id": image_id, "file_name": name, "width": w, "height": h})
        for p in range(people):
            bw, bh = rng.uniform(10, w / 2), rng.uniform(10, h / 2)
            x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
            kx = rng.uniform(x, x + bw, 17)
            ky = rng.uniform(y, y + bh, 17)
            v = rng.choice([0, 1, 2], 17, p=[0.2, 0.3, 0.5])
            kps = np.stack([np.where(v > 0, kx, 0), np.where(v > 0, ky, 0), v], 1)
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": 1,
                         "iscrowd": 0, "area": float(bw * bh), "bbox": [x, y, bw, bh],
                         "keypoints": [round(float(t), 2) for t in kps.ravel()],
                         "num_keypoints": int((v > 0).sum())})
            dets.append({"image_id": image_id, "category_id": 1, "bbox": [x, y, bw, bh],
                         "score": float(rng.uniform(0.2, 1.0))})
    with open(os.path.join(root, "annotations", f"person_keypoints_{split}.json"), "w") as f:
        json.dump({"images": images, "annotations": anns,
                   "categories": [{"id": 1, "name": "person"}]}, f)
    if detections:
        os.makedirs(os.path.join(root, "person_detection_results"), exist_ok=True)
        with open(os.path.join(root, "person_detection_results",
                               "COCO_val2017_detections_AP_H_56_person.json"), "w") as f:
            json.dump(dets, f)
    return root


def write_mpii(root, split="train", num_people=6, size=(64, 64), seed=0):
    rng = np.random.default_rng(seed)
    w, h = size
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    os.makedirs(os.path.join(root, "annot"), exist_ok=True)
    anno = []
    for i in range(num_people):
        name = f"{split}_{i:04d}.jpg"
        write_jpeg(os.path.join(root, "images", name), texture(rng, w, h))
        anno.append({"image": name, "center": [w / 2 + 1, h / 2 - 5], "scale": 0.2,
                     "joints": rng.uniform(1, w, (16, 2)).round(1).tolist(),
                     "joints_vis": rng.choice([0, 1], 16, p=[0.2, 0.8]).tolist()})
    with open(os.path.join(root, "annot", f"{split}.json"), "w") as f:
        json.dump(anno, f)
    return root


def coco_cfg(root, **overrides):
    from hrgan_jax.configs.default import get_config
    cfg = get_config().data
    cfg.root = str(root)
    cfg.num_parallel_calls = 2
    for k, v in overrides.items():
        setattr(cfg, k, v)
    return cfg
