"""``mindvl manifest show | verify | diff``: reading ratio manifests without opening shards."""
