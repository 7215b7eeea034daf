"""python -m data_pipeline.tfds.prepare --name=coco|mpii --manual_dir=ROOT --data_dir=TFDS_DIR"""
from absl import app, flags

flags.DEFINE_enum("name", "coco", ["coco", "mpii"], "dataset")
flags.DEFINE_string("manual_dir", None, "the official dataset directory", required=True)
flags.DEFINE_string("data_dir", None, "TFDS data_dir to write (config.data.tfds_dir)", required=True)
FLAGS = flags.FLAGS


def main(_):
    from data_pipeline.tfds.builders import prepare  # deferred: TensorFlow Datasets, after flag parsing
    builder = prepare(FLAGS.name, FLAGS.manual_dir, FLAGS.data_dir)
    print(builder.info.splits)


if __name__ == "__main__":
    app.run(main)
