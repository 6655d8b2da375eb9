"""The Ray-free core of recaptioning: candidates in, candidates with new captions out.

One :class:`CaptionRunner` lives in each actor (or in a test, or a single-process run).
For every kept candidate whose category has a prompt it: renders the prompt, looks the
result up in the cache, generates the misses in batches of ``spec.batch_size``, checks
each caption and applies the category's policy, and records provenance in
``meta["caption_provenance"]`` (a JSON string of :class:`CaptionProvenance`).

The first image of a candidate is the one captioned; candidates of other categories and
dropped ones pass through untouched, and a candidate already carrying provenance is not
captioned twice (a resumed build re-reading staged rows).

A failing batch (out of memory, an image the processor rejects) is split in halves and
retried down to single samples; a sample that still fails keeps its original text and gets
``meta["caption_error"] = "error:<ExceptionType>"``. The build goes on.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from mindvl.common.caption_backend import CaptionBackend
from mindvl.common.recipe import CaptionSpec
from mindvl.common.sample import CaptionProvenance
from mindvl.data_engine.caption.cache import CaptionCache, cache_key, sha256_text
from mindvl.data_engine.caption.checks import CaptionChecker
from mindvl.data_engine.caption.policy import apply_caption, original_text
from mindvl.data_engine.record import Candidate

log = logging.getLogger(__name__)

PROVENANCE_META = "caption_provenance"
ERROR_META = "caption_error"
ORIGINAL_SLOT = "{original}"


def render_prompt(template: str, original: str | None) -> str:
    """The category prompt; ``{original}`` in it is replaced by the original text."""
    return template.replace(ORIGINAL_SLOT, original or "")


def _pixels(c: Candidate) -> int:
    """Decoded size of the first image if an earlier stage recorded it, else 0."""
    first = c.images[0] if c.images else None
    if first is not None and first.width and first.height:
        return first.width * first.height
    return 0


@dataclass
class _Job:
    candidate: Candidate
    prompt: str
    key: str


@dataclass
class RunnerStats:
    model_calls: int = 0  # backend.generate calls, retries included
    generated: int = 0  # captions the model produced
    cache_hits: int = 0
    failed: int = 0  # samples whose generation failed even alone


class CaptionRunner:
    def __init__(
        self, spec: CaptionSpec, backend: CaptionBackend, cache: CaptionCache | None = None
    ) -> None:
        self.spec = spec
        self.backend = backend
        self.cache = cache
        self.checker = CaptionChecker(spec.checks)
        self.generation: dict[str, Any] = dict(spec.generation)
        self.stats = RunnerStats()

    def run(self, candidates: list[Candidate]) -> list[Candidate]:
        """Caption ``candidates`` in place (and return them, in the same order)."""
        jobs: list[_Job] = []
        for c in candidates:
            category = self.spec.categories.get(c.category)
            if c.dropped or category is None or PROVENANCE_META in c.meta:
                continue
            if not c.images:
                c.meta[ERROR_META] = "no_image"
                continue
            prompt = render_prompt(category.prompt, original_text(c))
            image_sha = hashlib.sha256(c.images[0].data).hexdigest()
            key = cache_key(
                image_sha,
                self.backend.model_id,
                self.backend.weights_digest,
                prompt,
                self.generation,
            )
            jobs.append(_Job(c, prompt, key))
        texts: dict[str, str] = {}
        errors: dict[str, str] = {}
        todo: dict[str, _Job] = {}
        for job in jobs:
            cached = self.cache.get(job.key) if self.cache is not None else None
            if cached is not None:
                texts[job.key] = cached
                self.stats.cache_hits += 1
            else:
                todo.setdefault(job.key, job)  # one generation per distinct key
        # similar image sizes batch together: less padding of the vision tokens
        pending = sorted(todo.values(), key=lambda j: _pixels(j.candidate))
        size = self.spec.batch_size
        for start in range(0, len(pending), size):
            self._generate(pending[start : start + size], texts, errors)
        for job in jobs:
            self._finish(job, texts.get(job.key), errors.get(job.key))
        log.info(
            "captioned %d (cache hits %d, generated %d, failed %d so far)",
            len(jobs),
            self.stats.cache_hits,
            self.stats.generated,
            self.stats.failed,
        )
        return candidates

    def _generate(self, batch: list[_Job], texts: dict[str, str], errors: dict[str, str]) -> None:
        """Generate ``batch``; on failure retry each half, down to one sample."""
        self.stats.model_calls += 1
        try:
            out = self.backend.generate(
                [j.candidate.images[0].data for j in batch],
                [j.prompt for j in batch],
                self.generation,
            )
            if len(out) != len(batch):
                raise RuntimeError(f"backend returned {len(out)} captions for {len(batch)} inputs")
        except Exception as err:
            if len(batch) == 1:
                log.warning("caption failed for %s: %r", batch[0].candidate.key, err)
                errors[batch[0].key] = f"error:{type(err).__name__}"
                self.stats.failed += 1
                return
            half = len(batch) // 2
            self._generate(batch[:half], texts, errors)
            self._generate(batch[half:], texts, errors)
            return
        fresh = {j.key: str(t) for j, t in zip(batch, out, strict=True)}
        self.stats.generated += len(fresh)
        texts.update(fresh)
        if self.cache is not None:
            self.cache.put_many(fresh)

    def _finish(self, job: _Job, text: str | None, error: str | None) -> None:
        c = job.candidate
        if text is None:
            c.meta[ERROR_META] = error or "error:missing"
            return
        text = text.strip()
        category = self.spec.categories[c.category]
        reason = self.checker(text)
        provenance = CaptionProvenance(
            model_id=self.backend.model_id,
            weights_digest=self.backend.weights_digest,
            prompt_digest=sha256_text(category.prompt),
            generation=self.spec.generation,
            policy=category.policy,
            original=original_text(c),
            accepted=reason is None,
            reason=reason,
        )
        if reason is None:
            apply_caption(c, category.policy, job.prompt, text)
        c.meta[PROVENANCE_META] = provenance.model_dump_json()
