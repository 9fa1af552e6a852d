"""Subprocess helper for tests/test_serving.py: loads a SavedModel in a fresh process and runs its signatures.

  python tests/scripts/serve_export.py EXPORT_DIR IMAGES_NPZ OUT_NPZ PNG_FILE...

IMAGES_NPZ holds uint8 images image_0, image_1, ...; each goes through labels_from_images (a batch of one).
The PNG files go, as one batch of encoded bytes, through serving_default. Everything is saved to OUT_NPZ; a JSON
line of the signatures' input specs is printed after 'SIGNATURES '.
"""
import json
import sys

import numpy as np
import tensorflow as tf

export_dir, images_npz, out_npz, *pngs = sys.argv[1:]
loaded = tf.saved_model.load(export_dir)
signatures = loaded.signatures
images = np.load(images_npz)
out = {}
for key in sorted(images.files):
    batch = tf.constant(images[key][np.newaxis])
    out["labels_" + key] = signatures["labels_from_images"](images=batch)["labels"].numpy()[0]
data = tf.constant([open(p, "rb").read() for p in pngs])
for k, v in signatures["serving_default"](image_bytes=data).items():
    out["bytes_" + k] = v.numpy()
np.savez(out_npz, **out)
specs = {name: {k: [str(v.dtype.name), v.shape.as_list()] for k, v in fn.structured_input_signature[1].items()}
         for name, fn in signatures.items()}
print("SIGNATURES " + json.dumps(specs))
