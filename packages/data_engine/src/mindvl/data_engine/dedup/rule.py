"""The near-duplicate rule: every threshold of dedup in one frozen object.

The recipe's ``dedup.near`` knobs map onto it (``NearRule.from_spec``); the rest are the
comparison's bounds (how they were set: docs/DEDUP.md, ``bench/dedup_quality.py``). Steps
receive the rule, never a module constant. The screens are cheap rejections in front of
the full comparison, each bounding a relaxation of it (a coarser grid of crops or a lower
resolution finds a best crop no better than the full search, up to resampling noise), so a
screen bound above ``max_p99`` rejects only pairs the full search rejects too;
``unscreened()`` turns them off (``tests/data_engine/test_dedup_corpus.py`` checks that
this changes no decision). ``resize_screen_levels`` and ``jpeg_screen_levels`` are
measured, not derived: the icon resizes and JPEGs of resizes whose pixels are found on
real sets b and c are within 18.3 mean levels of each other after one bicubic resize, and
JPEGs of icons at their own size within 32.6 of their originals (docs/DEDUP.md).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class NearRule:
    # recipe knobs (``NearDedupSpec``)
    enabled: bool = True
    max_hamming: int = 10  # pHash bits a candidate pair may differ by
    crop_only_beyond: int = 6  # further pairs must have the sizes of a crop
    # two icons (each with its own pixels, ``fingerprint.NATIVE_MAX_SIDE``): their pHash, an
    # upsample to 32x32 of simple content, moves further under a resize or a JPEG
    icon_crop_only_beyond: int = 10
    min_information: float = 0.0  # flatter images get exact dedup only
    verify: bool = True  # compare candidate pairs (else every candidate pair is a duplicate)
    index: Literal["auto", "exact", "sampled"] = "auto"
    sampled_recall: float = 0.99
    crowded_bucket: int = 64  # m: a bucket with > m(m-1)/2 close pairs is crowded
    detail_max_hamming: int = 8  # in a crowded bucket pairs must be this close in detail
    crop_key_max_hamming: int = 8  # a crop key (``fingerprint.crop_keys``) pairs this close
    # two pictures' crop keys pair this close (compared pairs only): a crop that cuts into a
    # drawing filling its canvas (a letter) moves both own pHashes and every crop key's
    # distance to them beyond the radii, while a cut of each can stay within a few bits
    crop_to_crop_max_hamming: int = 4
    # an icon's content key (``fingerprint.icon_keys``) pairs this close, its canvas keys
    # (the whole canvas's average hash on white and, transparent, on black, which a resize
    # or a JPEG keeps within a few bits) this close; each kind in buckets of its own,
    # crowded beyond icon_crowded_bucket (simple icons' means collide more)
    icon_key_max_hamming: int = 8
    canvas_key_max_hamming: int = 4
    icon_crowded_bucket: int = 256
    # a member of two survivors' pairs goes with the one its pixels are found in, or (both
    # or neither) the one whose gray p99 is lower by more than this (``groups.star_members``;
    # less is the crop grid's resampling noise)
    closer_margin: float = 0.05
    # gray thumbnails at the best crop: 99th percentile and largest |z difference|
    max_p99: float = 0.5
    max_peak: float = 1.0
    # two pictures of one size are compared without resampling: only an encoding's noise
    # is left, so their gray p99 has this tighter bound
    one_size_max_p99: float = 0.35
    # two pictures over 64 px a side that only a pad or crop explains, at the crop their
    # sizes tell (no resize: only the thumbnails' own resampling and an encoding's noise)
    pad_max_peak: float = 0.7
    # two pictures of one size: their plain thumbnails, one's levels fitted linearly to the
    # other's, may differ by more than one_size_levels in at most one_size_max_pixels pixels
    # (a re-encode moves every pixel a little; another glyph or emblem moves a few a lot)
    one_size_levels: float = 40.0
    one_size_max_pixels: int = 2
    # two icons whose sizes a resize explains are compared by their own pixels, one resized
    # to the other's size, down to this scale (below, every pixel averages four or more and
    # any two simple drawings agree)
    resize_min_scale: float = 0.5
    # two such icons whose pixels no resize reproduces are left to their gray thumbnails,
    # held there to this p99 at their best crop instead of max_p99: what may still make them
    # one picture is a change on top of a resize (a pad or crop of a resized copy), while
    # two themes' drawings of one icon at two sizes come within 0.45-0.49
    resized_unfit_max_p99: float = 0.45
    # two icons of one size, by their own pixels in colour, levels not fitted (a recoloured
    # icon is another icon): at their best whole move of up to icon_move pixels per axis,
    # each pixel allowed a shift of one (a re-rendered edge moves), at most icon_max_share
    # of their content (pixels further than icon_levels from the ground) differ by more
    # than icon_levels in a channel on either ground
    icon_move: int = 2
    icon_levels: float = 32.0
    icon_max_share: float = 0.05
    # two transparent icons of one size (neither a JPEG: it keeps no alpha) must also be
    # within this many levels everywhere at that move, as the real sets' truth asks of a
    # re-rendered drawing: another eyebrow or frame puts a colour where the other has none,
    # and the one-pixel shift hides it (a JPEG's ringing exceeds it at a small icon's edges)
    icon_max_levels: float = 64.0
    # two transparent icons of one size, neither reduced to a palette from the other
    # (``pixels.palette_reduced``: at most palette_max_colours colours, a function of the
    # other's but for palette_max_strays of the pixels), are related by no re-encode but a
    # lossy WebP (tried apart, ``pixels.webp_of``): a re-exported drawing the rest of the
    # rule accepts moves under transparent_max_share of their content by more than
    # transparent_levels, a changed outline's alpha or a redrawn figure more
    transparent_levels: float = 24.0
    transparent_max_share: float = 0.03
    palette_max_colours: int = 256
    palette_max_strays: float = 0.05
    # two icons of one size, one opaque, are one picture when a JPEG of the other is it to
    # the one_size bounds (``pixels.jpeg_of``), before any other check, when they have at
    # least this many pixels (16x16): the two pixels allowed off are then under 1% of them
    # (two 8x8 charts of two equations can be 2 of 64 apart), and the thumbnails of so
    # small a picture are an upsample that magnifies the encode's noise
    jpeg_min_pixels: int = 256
    # content boxes, when both pictures have one of similar area (within the ratio)
    content_max_area_ratio: float = 1.5
    content_max_p99: float = 0.55
    content_max_peak: float = 2.0
    # levels: the thumbnails' mean levels at the crop found, on each ground both carry, may
    # differ by at most this (a brightness change; the gray comparison fits levels, which
    # would make any two flat pictures, a grey and a white veil, one)
    max_level_shift: float = 32.0
    # colour: relative chroma difference (up to a saturation change) and mean hue angle
    max_chroma: float = 0.25
    saturation_scale: float = 1.25
    chroma_floor: float = 8.0  # per cell, so near-grey pictures are not judged on noise
    max_hue_degrees: float = 15.0
    # two pictures of one size compare their chroma planes cell for cell, not resampled to a
    # crop: only an encoding's noise moves their hue (right merges on the real sets and the
    # kit seeds: at most 6.4 degrees), so a recolour is held to this tighter bound
    one_size_max_hue_degrees: float = 10.0
    hue_min_saturation: float = 16.0  # cells less saturated than this have no hue
    # sizes: a crop must turn one aspect ratio into the other's within this |log ratio|;
    # a far pair's smaller image must keep at least this share of each side
    max_aspect_log: float = 0.05
    crop_min_kept: float = 0.8
    # a pair found by the trimmed pHash only: trim box sides may differ by this share + 1 px
    trim_max_change: float = 0.02
    # a pHash that another resampling filter moves by at least this many bits is noise (a
    # flat, nearly symmetric picture: 20-32 bits; most pictures 0-2, two diamonds drawn at
    # two scales 4): two pictures over icon size are then weighed by their distance less
    # the larger drift (``evidence``) where a distance asks for a crop's sizes or trim boxes
    drift_min: int = 8
    # screens (None: off): 16x16 coarse grid over all pairs of a bucket, 24x24 full
    # search per pair, and the 48x48 coarse grid's best above which refinement is skipped
    screen_max: float | None = 1.4
    prescreen_max: float | None = 1.2
    give_up_above: float | None = 0.8
    # two icons are tried as a resize of each other (``pixels.resized_pixels_fit``: six
    # resamplers, premultiplied and on straight alpha, two in linear light, both ways,
    # JPEG encodes) only when one, resized by bicubic to the other's size, is within this
    # mean level difference of it on white
    resize_screen_levels: float | None = 30.0
    # two icons of one size are tried as a JPEG of each other first (``pixels.jpeg_of``)
    # only within this mean level difference on white (JPEGs at quality 75 of the first 400
    # icons of each real set: at most 32.6)
    jpeg_screen_levels: float | None = 40.0

    def __post_init__(self) -> None:
        for name in ("screen_max", "prescreen_max", "give_up_above"):
            bound = getattr(self, name)
            if bound is not None and bound < self.max_p99:
                raise ValueError(f"{name} {bound} is below max_p99 {self.max_p99}: it would "
                                 "reject pairs the comparison accepts")  # fmt: skip

    @classmethod
    def from_spec(cls, near) -> NearRule:  # noqa: ANN001 (a NearDedupSpec)
        """The rule of a recipe's ``dedup.near``: each of its knobs is a field here."""
        return cls(**near.model_dump())

    def unscreened(self) -> NearRule:
        """The same rule without its screens (every pair gets the full comparison)."""
        return replace(self, screen_max=None, prescreen_max=None, give_up_above=None,
                       resize_screen_levels=None, jpeg_screen_levels=None)  # fmt: skip

    @property
    def pair_radius(self) -> int:
        """The pHash distance pairs are sought up to: pairs beyond ``crop_only_beyond`` are
        kept only when the comparison sees a crop's sizes, so without it the radius stops."""
        return self.max_hamming if self.verify else min(self.max_hamming, self.crop_only_beyond)

    def crop_only_beyond_for(self, icons: bool | np.ndarray) -> np.ndarray:
        """The pHash distance beyond which a pair must have a crop's sizes, per pair (``icons``:
        both pictures carry their own pixels): ``icon_crop_only_beyond`` for two icons, but
        never nearer than a recipe's ``crop_only_beyond``."""
        icon = max(self.icon_crop_only_beyond, self.crop_only_beyond)
        return np.where(icons, icon, self.crop_only_beyond)

    def evidence(self, distance, drift_a, drift_b, icon):
        """The pHash distance a pair is weighed by in ``crop_sizes`` and ``trim_scale``: its
        distance less the larger drift of the two pictures where that is at least
        ``drift_min`` (never below 0); a pair with an icon (``icon``: either carries its own
        pixels, a soft disc's pHash drifts too) as is. Scalars or arrays, per pair."""
        drift = np.maximum(drift_a, drift_b)
        drift = np.where(icon | (drift < self.drift_min), 0, drift)
        return np.maximum(np.asarray(distance) - drift, 0)

    @property
    def crop_radius(self) -> int:
        """How close a crop key and another image's pHash must be (within the pair radius)."""
        return min(self.pair_radius, self.crop_key_max_hamming)

    @property
    def crop_to_crop_radius(self) -> int:
        """How close two images' crop keys must be (within the pair radius; never without
        comparison, which must confirm such a pair)."""
        return min(self.pair_radius, self.crop_to_crop_max_hamming) if self.verify else -1
