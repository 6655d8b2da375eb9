"""Evaluation of MindVL checkpoints on a held-out shard build: exact-match accuracy per
task and category against a majority-answer baseline, validation loss through the
trainer's packer, and a test-time search over the image resolution rule."""
