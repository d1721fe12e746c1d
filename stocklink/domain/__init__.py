"""The domain rules of stocklink as pure functions over plain values.

Stock arithmetic and the push value of a listing (:mod:`.stock`), the NextEngine
delta rules for negative stock (:mod:`.delta`), which products can be linked and what
to do with those that cannot (:mod:`.linking`), and the clean-up of pasted secrets and
codes (:mod:`.text`).

Nothing here imports Flask, SQLAlchemy, Redis or an HTTP client: the models, jobs and
views call these functions, and the tests call them directly with tables of cases taken
from the seeds (SPEC §3, §4, §11.7).
"""
