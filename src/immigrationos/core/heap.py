"""Python's garbage collector in a long-lived service that holds a large index in memory.

Two settings, both applied by :func:`settle_heap` when a service has built its index (the
departure matcher's consumers and API endpoint, the API's incremental linking):

- **Freeze what is held.** A full collection walks every container object the collector
  tracks: a matcher's index at a million persons is 3.5 million of them, 1.75 s a walk, a
  stall inside whatever batch it fell in. Frozen, they are no longer walked (and still freed
  when nothing refers to them).
- **Collect the youngest objects less often.** The collector starts a young collection
  whenever 700 more container objects have been made than freed (Python's default). A batch
  of departures holds tens of thousands at once (feature rows, candidates, explanations;
  a consumer fetches up to 1,024 events), all freed by reference counting when the batch
  ends: with the default, dozens of young collections a batch walked them and found nothing
  to free, and every tenth moved the survivors on to the older generations, whose
  collections then walked them again. At 1M persons that was a fifth of the matcher's CPU
  time (2.6 s of 12 s for 100,000 events, in batches of 256). From :data:`YOUNG_OBJECTS`, a
  batch's objects are gone before the collector looks: none of that work is done, and
  reference cycles (rare here) wait a little longer. (20,000, enough for batches of 256,
  still left one young collection in each batch of 1,024: 3–5 % of the matcher's time.)
"""

from __future__ import annotations

import gc

#: The young generation's threshold for a service holding an index: more than a batch of
#: departures (or a linking request) holds at once, so its objects are freed before a
#: collection starts. The older generations keep Python's thresholds.
YOUNG_OBJECTS = 100_000


def settle_heap() -> None:
    """Move everything the process holds now out of the collector's scans, and collect the
    young generation only every :data:`YOUNG_OBJECTS` objects (never less often than that,
    if something set a higher threshold).

    What an earlier call froze is unfrozen first, so that a replaced index's cycles are
    collected.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    young, older, oldest = gc.get_threshold()
    if young < YOUNG_OBJECTS:
        gc.set_threshold(YOUNG_OBJECTS, older, oldest)
