"""Hooks for .ci/schemathesis (loaded through SCHEMATHESIS_HOOKS).

An Idempotency-Key names one request: a client sends a fresh key with each
new request and the same key only with a retry of it. Drawn by Hypothesis,
keys repeat ("0", "00") across requests with different bodies, which the
server rightly refuses (422, as the IETF Idempotency-Key draft has it). So
every schema-valid key is replaced with a fresh UUID (schema-valid too);
keys drawn to violate the schema are sent as drawn, for the negative checks.
"""

import uuid

import schemathesis
from schemathesis import GenerationMode


@schemathesis.hook
def before_call(context, case, kwargs):
    headers = case.headers
    if not headers or case.meta is None:
        return
    if case.meta.generation.mode != GenerationMode.POSITIVE:
        return
    for name in list(headers):
        if name.lower() == "idempotency-key":
            headers[name] = str(uuid.uuid4())
