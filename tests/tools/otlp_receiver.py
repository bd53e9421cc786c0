#!/usr/bin/env python3
"""A minimal OTLP/HTTP metrics receiver for the root tests (tests/tests/otlp.rs).

It decodes each POSTed ExportMetricsServiceRequest with the OpenTelemetry project's own
definitions (PyPI `opentelemetry-proto`, which `cargo xtask test` installs) and appends one JSON
line per data point to OUT:

  {"request": N, "content_type": ..., "path": ..., "resource": {...}, "scope": ...,
   "metric": ..., "unit": ..., "kind": "sum"|"gauge", "monotonic": bool, "temporality": int,
   "start": ns, "time": ns, "attributes": {...}, "value": int}

and answers 200 with an empty ExportMetricsServiceResponse (415 for another content type).

Usage: otlp_receiver.py PORT OUT [STATUS]

With STATUS (say 400), every request is decoded but answered with that status and not
recorded: a collector that refuses.
"""
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

LOCK = threading.Lock()
REQUESTS = [0]


def attributes(key_values):
    out = {}
    for kv in key_values:
        which = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, which) if which else None
    return out


def points(request, number, content_type, path):
    for resource_metrics in request.resource_metrics:
        resource = attributes(resource_metrics.resource.attributes)
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                kind = metric.WhichOneof("data")
                if kind == "sum":
                    data = metric.sum
                    monotonic, temporality = data.is_monotonic, data.aggregation_temporality
                elif kind == "gauge":
                    data = metric.gauge
                    monotonic, temporality = False, 0
                else:
                    raise ValueError(f"unexpected metric kind {kind} of {metric.name}")
                for point in data.data_points:
                    value = point.as_int if point.WhichOneof("value") == "as_int" else point.as_double
                    yield {
                        "request": number,
                        "content_type": content_type,
                        "path": path,
                        "resource": resource,
                        "scope": scope_metrics.scope.name,
                        "metric": metric.name,
                        "unit": metric.unit,
                        "kind": kind,
                        "monotonic": monotonic,
                        "temporality": temporality,
                        "start": point.start_time_unix_nano,
                        "time": point.time_unix_nano,
                        "attributes": attributes(point.attributes),
                        "value": value,
                    }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        content_type = self.headers.get("Content-Type", "")
        if content_type != "application/x-protobuf":
            self.answer(415, b"want application/x-protobuf\n", "text/plain")
            return
        request = metrics_service_pb2.ExportMetricsServiceRequest()
        request.ParseFromString(body)
        if STATUS != 200:
            self.answer(STATUS, b"refused by the test\n", "text/plain")
            return
        with LOCK:
            REQUESTS[0] += 1
            lines = [json.dumps(p) for p in points(request, REQUESTS[0], content_type, self.path)]
            with open(OUT, "a", encoding="utf-8") as out:
                out.write("".join(line + "\n" for line in lines))
        response = metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString()
        self.answer(200, response, "application/x-protobuf")

    def answer(self, status, body, content_type):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        sys.stderr.write("otlp_receiver: " + (format % args) + "\n")


if __name__ == "__main__":
    PORT, OUT = int(sys.argv[1]), sys.argv[2]
    STATUS = int(sys.argv[3]) if len(sys.argv) > 3 else 200
    server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
    print("listening", flush=True)
    server.serve_forever()
