"""Schemathesis hooks for Doppel (scripts/schemathesis.sh loads them through SCHEMATHESIS_HOOKS).

Identifiers (userId, signatureId, type, region, reviewer) refuse every invisible character: control,
format and separator characters (Go's duplicate.Invisible). The OpenAPI description states that rule
as a pattern, but a pattern can name only the Basic Multilingual Plane's characters: schemathesis
refuses a pattern holding characters beyond it as invalid. So the format characters above the BMP
(tag characters such as U+E0043 above all) pass the pattern and are refused by the server, and a
generated case holding one would be reported as "schema-valid request rejected". Those cases are left
out here; internal/httpapi/pattern_test.go checks the rule for them in Go, and that this list is
Go's (unicode.Cf's ranges beyond the BMP, as (first, last, stride)).
"""
import schemathesis

FORMAT_BEYOND_BMP = [
    (0x110BD, 0x110CD, 16),
    (0x13430, 0x1343F, 1),
    (0x1BCA0, 0x1BCA3, 1),
    (0x1D173, 0x1D17A, 1),
    (0xE0001, 0xE0020, 31),
    (0xE0021, 0xE007F, 1),
]


def _invisible_beyond_bmp(c):
    cp = ord(c)
    return any(lo <= cp <= hi and (cp - lo) % stride == 0 for lo, hi, stride in FORMAT_BEYOND_BMP)


def _holds_one(value):
    if isinstance(value, str):
        return any(ord(c) > 0xFFFF and _invisible_beyond_bmp(c) for c in value)
    if isinstance(value, dict):
        return any(_holds_one(k) or _holds_one(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_holds_one(v) for v in value)
    return False


@schemathesis.hook
def filter_body(ctx, body):
    return not _holds_one(body)


@schemathesis.hook
def filter_query(ctx, query):
    return not _holds_one(query)


@schemathesis.hook
def filter_path_parameters(ctx, path_parameters):
    return not _holds_one(path_parameters)


@schemathesis.hook
def filter_headers(ctx, headers):
    return not _holds_one(headers)
