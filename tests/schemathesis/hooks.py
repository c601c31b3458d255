"""Schemathesis hooks for printfarm: Global API calls get a real session, so the fuzzing
reaches the handlers behind the session check instead of stopping at 401.

PF_SESSION is an organization admin's session (run.sh signs in before the run).
"""
import os

import schemathesis

SESSION = os.environ["PF_SESSION"]
# Calls whose `session` must stay as generated: logging out would end the shared session,
# and gdpr_registration takes a Google sign-up session, not a normal one.
KEEP_GENERATED = {"/apiglobal/loginout", "/apiglobal/gdpr_registration"}


@schemathesis.hook
def map_body(context, body):
    op = context.operation
    if (
        op is not None
        and op.path not in KEEP_GENERATED
        and isinstance(body, dict)
        and "session" in body
    ):
        body = dict(body)
        body["session"] = SESSION
    return body
