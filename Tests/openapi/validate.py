#!/usr/bin/env python3
"""Checks docs/openapi.yaml, and recorded exchanges with berthd against it.

    validate.py OPENAPI.yaml EXCHANGES.json

EXCHANGES.json is {"exchanges": [...]}, each exchange:
    label            what the test meant to do, for the messages
    method, target   the request line (target: path and query, as sent)
    request_headers  [[name, value], ...]
    request_body     the body as text, or null
    request_body_omitted   true when the body was too big to record (not checked)
    expect_request   "valid": the document must accept the request;
                     "invalid": the document must refuse it (the daemon refused its shape)
    expect_route     false for a request to a path or method the API does not have
    status, response_headers, response_body   the answer

Every answer must be documented (path, method, status, headers, media type) and its body
must validate against the schema. Every operation of the document must have been exercised.
Prints one line per failure and exits 1 if there is any; exits 2 if it cannot run.
"""

import json
import re
import sys
import urllib.parse

try:
    import yaml
    from jsonschema import Draft202012Validator, FormatChecker
    from openapi_spec_validator import validate as validate_document
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012
except ImportError as error:  # pragma: no cover - depends on the machine
    print(f"validate.py: {error}; run scripts/install-deps.sh (it installs Tests/requirements.txt into .build/venv)")
    sys.exit(2)

BASE = "urn:berth:openapi"
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
# Headers that are part of the API: an answer that carries one must document it.
API_HEADERS = {"retry-after", "berth-log-size", "idempotency-key"}
FORMATS = FormatChecker()


def pointer(*parts):
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


class Document:
    def __init__(self, spec):
        self.spec = spec
        resource = Resource.from_contents(spec, default_specification=DRAFT202012)
        self.registry = Registry().with_resource(BASE, resource)
        self.routes = []
        for template, item in spec.get("paths", {}).items():
            pattern = "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template)) + "$"
            self.routes.append((template, re.compile(pattern), item))

    def resolve(self, obj, where):
        """Follows an OpenAPI `$ref` (to a response or parameter) to the object and its pointer."""
        while isinstance(obj, dict) and "$ref" in obj:
            ref = obj["$ref"]
            if not ref.startswith("#/"):
                raise ValueError(f"{where}: only local $refs are supported, not {ref}")
            parts = [urllib.parse.unquote(p).replace("~1", "/").replace("~0", "~") for p in ref[2:].split("/")]
            obj = self.spec
            for part in parts:
                obj = obj[part]
            where = "/" + ref[2:]
        return obj, where

    def errors(self, value, schema_pointer):
        """Messages for `value` against the schema at `schema_pointer` in the document."""
        ref = BASE + "#" + urllib.parse.quote(schema_pointer, safe="/~")
        validator = Draft202012Validator({"$ref": ref}, registry=self.registry, format_checker=FORMATS)
        found = []
        for error in sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path)):
            location = error.json_path
            found.append(f"{location}: {error.message}" + context(error))
        return found

    def route(self, method, path):
        """(template, operation, pointer, path parameters, path item), or None."""
        for template, pattern, item in self.routes:
            match = pattern.match(path)
            if match and method.lower() in item:
                params = {k: urllib.parse.unquote(v) for k, v in match.groupdict().items()}
                return template, item[method.lower()], pointer("paths", template, method.lower()), params, item
        return None


def context(error):
    """The reasons under an anyOf/oneOf failure, briefly."""
    if not error.context:
        return ""
    reasons = sorted({f"{e.json_path}: {e.message}" for e in error.context})
    return " (" + "; ".join(reasons[:4]) + ")"


def coerce(text, schema):
    """A parameter's text as the type its schema asks for, so the schema can judge it."""
    kinds = schema.get("type", "string")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    if "integer" in kinds and re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    if "number" in kinds:
        try:
            return float(text)
        except ValueError:
            pass
    if "boolean" in kinds and text in ("true", "false"):
        return text == "true"
    return text


def media_matches(documented, received):
    """`application/json` matches `application/json; charset=utf-8`; a documented media type
    with parameters must match them too."""
    def parts(value):
        items = [p.strip().lower() for p in value.split(";") if p.strip()]
        return items[0] if items else "", sorted(items[1:])
    doc_type, doc_params = parts(documented)
    got_type, got_params = parts(received)
    return doc_type == got_type and (not doc_params or doc_params == got_params)


def check_parameters(doc, declared, path_params, query, headers):
    """`declared`: (parameter object or $ref, its pointer) pairs."""
    problems = []
    for raw, where in declared:
        param, where = doc.resolve(raw, where)
        name, place = param["name"], param["in"]
        source = {"path": path_params, "query": query, "header": headers}.get(place, {})
        key = name.lower() if place == "header" else name
        if key not in source:
            if param.get("required"):
                problems.append(f"{place} parameter {name}: required, missing")
            continue
        value = coerce(source[key], param.get("schema", {}))
        for message in doc.errors(value, where + "/schema"):
            problems.append(f"{place} parameter {name}={source[key]!r}: {message}")
    return problems


def check_request(doc, exchange, template, operation, op_pointer, path_params, item):
    """What the document has against the request; empty when it accepts it."""
    target = exchange["target"]
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(target).query, keep_blank_values=True))
    headers = {name.lower(): value for name, value in exchange.get("request_headers", [])}
    item_pointer = pointer("paths", template)
    declared = [(p, item_pointer + pointer("parameters", i)) for i, p in enumerate(item.get("parameters", []))]
    declared += [(p, op_pointer + pointer("parameters", i)) for i, p in enumerate(operation.get("parameters", []))]
    problems = check_parameters(doc, declared, path_params, query, headers)
    body = operation.get("requestBody")
    if body is None or exchange.get("request_body_omitted"):
        return problems
    body, body_where = doc.resolve(body, op_pointer + "/requestBody")
    text = exchange.get("request_body")
    if text is None or text == "":
        if body.get("required"):
            problems.append("request body: required, missing")
        return problems
    try:
        value = json.loads(text)
    except ValueError as error:
        return problems + [f"request body: not JSON ({error})"]
    media = body["content"].get("application/json")
    if media is None:
        return problems + ["request body: the document takes no application/json body here"]
    problems += [f"request body {m}" for m in doc.errors(value, body_where + pointer("content", "application/json", "schema"))]
    return problems


def check_response(doc, exchange, responses, where):
    """What is wrong with the answer against the documented responses at `where`."""
    status = str(exchange["status"])
    if status not in responses:
        return [f"status {status} is not documented (documented: {', '.join(sorted(responses))})"]
    response, response_where = doc.resolve(responses[status], where + pointer(status))
    failures = []
    headers = {}
    for name, value in exchange.get("response_headers", []):
        headers.setdefault(name.lower(), value)
    documented_headers = {name.lower(): (name, spec) for name, spec in response.get("headers", {}).items()}
    for key, (name, spec) in documented_headers.items():
        if key not in headers:
            if spec.get("required"):
                failures.append(f"header {name}: required, missing")
            continue
        value = coerce(headers[key], spec.get("schema", {}))
        for message in doc.errors(value, response_where + pointer("headers", name, "schema")):
            failures.append(f"header {name}={headers[key]!r}: {message}")
    for key in API_HEADERS & set(headers) - set(documented_headers):
        failures.append(f"header {key}: sent but not documented for {status}")

    content = response.get("content")
    body = exchange.get("response_body") or ""
    received = headers.get("content-type", "")
    if not content:
        if body:
            failures.append(f"a body ({received or 'no Content-Type'}) where the document has none")
        return failures
    media = next((m for m in content if media_matches(m, received)), None)
    if media is None:
        return failures + [f"Content-Type {received!r} is not documented (documented: {', '.join(content)})"]
    schema_at = response_where + pointer("content", media, "schema")
    if "schema" not in content[media]:
        return failures
    if media.split(";")[0].strip().lower().endswith("json"):
        try:
            value = json.loads(body)
        except ValueError as error:
            return failures + [f"body is not JSON ({error}): {body[:200]!r}"]
    else:
        value = body
    failures += [f"body {m}" for m in doc.errors(value, schema_at)]
    return failures


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2].strip())
        return 2
    with open(argv[1], encoding="utf-8") as f:
        spec = yaml.safe_load(f)
    failures = []
    try:
        validate_document(spec)
    except Exception as error:  # the validator raises several types
        print(f"FAIL {argv[1]}: not a valid OpenAPI document: {error}")
        return 1
    if FORMATS.conforms("not a time", "date-time"):
        print("FAIL validate.py: date-time formats are not checked (rfc3339-validator missing)")
        return 2
    doc = Document(spec)
    with open(argv[2], encoding="utf-8") as f:
        exchanges = json.load(f)["exchanges"]

    exercised = set()
    statuses = set()
    for exchange in exchanges:
        method = exchange["method"].upper()
        path = urllib.parse.urlsplit(exchange["target"]).path
        title = f"[{exchange['label']}] {method} {exchange['target'][:120]} → {exchange['status']}"
        routed = doc.route(method, path)
        problems = []
        if routed is None:
            if exchange.get("expect_route", True):
                problems.append(f"{method} {path} is not in the document")
            else:
                # Any other path or method: 404 in the error shape.
                problems += check_response(doc, exchange, {"404": {"$ref": "#/components/responses/NotFound"}}, "/unrouted")
        else:
            template, operation, op_pointer, path_params, item = routed
            if not exchange.get("expect_route", True):
                problems.append(f"expected a path the API does not have, but the document has {method} {template}")
            exercised.add((template, method.lower()))
            statuses.add((template, method.lower(), str(exchange["status"])))
            request_problems = check_request(doc, exchange, template, operation, op_pointer, path_params, item)
            expected = exchange.get("expect_request", "valid")
            if expected == "valid" and request_problems:
                problems += [f"request refused by the document, but the daemon took it: {p}" for p in request_problems]
            elif expected == "invalid" and not request_problems and not exchange.get("request_body_omitted"):
                problems.append("the daemon refused the request's shape, but the document accepts it")
            problems += check_response(doc, exchange, operation.get("responses", {}), op_pointer + "/responses")
        for problem in problems:
            failures.append(f"FAIL {title}: {problem}")

    for template, item in spec["paths"].items():
        for method in sorted(METHODS & set(item)):
            if (template, method) not in exercised:
                failures.append(f"FAIL {method.upper()} {template}: documented, but no exchange exercised it")
            for status in item[method].get("responses", {}):
                if (template, method, status) not in statuses and status != "500":
                    print(f"note: {method.upper()} {template} {status}: documented, not exercised")

    for line in failures:
        print(line)
    print(f"openapi: {len(exchanges)} exchanges, {len(exercised)} operations, {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
