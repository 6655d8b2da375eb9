"""The trainer's data path: verified shards -> tokenised samples -> packed micro-batches."""
