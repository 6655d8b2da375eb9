"""What the read/filter/dedup/caption stages hand to mixing, for the manifest's funnel."""

from __future__ import annotations

from dataclasses import dataclass, field

from mindvl.common.manifest import DedupStats, FunnelEntry, InputFile, SourceFunnel


@dataclass
class BuildAccounting:
    inputs: list[InputFile] = field(default_factory=list)
    sources: list[SourceFunnel] = field(default_factory=list)  # kept = passed to mixing
    funnel: list[FunnelEntry] = field(default_factory=list)  # every drop before mixing
    dedup: DedupStats = field(default_factory=DedupStats)
