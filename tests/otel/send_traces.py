"""Sends agent traces to Vigil with the real OpenTelemetry Python SDK and its OTLP exporters.

Usage: send_traces.py --protocol grpc|http --endpoint URL --token TOKEN --runs N [--basic ID:SECRET]
                      [--root-attribute KEY=VALUE ...]
                      [--ca-file PEM [--client-cert PEM --client-key PEM]]

With --ca-file the endpoint is https and its certificate must be issued by that CA; with a client
certificate and key the exporter presents them (mutual TLS).

Each run is a root span (the agent run) with a model-call child and a tool-call child, using the
GenAI semantic-convention attribute names. Prints one JSON document describing everything sent
(trace and span ids as hex, attributes), so the test can compare Vigil's read-back with it.
"""

import argparse
import base64
import json
import sys
import time

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode


def read(path):
    with open(path, "rb") as f:
        return f.read()


def exporter(args, headers):
    if args.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        if not args.ca_file:
            return OTLPSpanExporter(endpoint=args.endpoint, insecure=True, headers=headers)
        import grpc

        credentials = grpc.ssl_channel_credentials(
            root_certificates=read(args.ca_file),
            private_key=read(args.client_key) if args.client_key else None,
            certificate_chain=read(args.client_cert) if args.client_cert else None,
        )
        return OTLPSpanExporter(endpoint=args.endpoint, insecure=False, credentials=credentials,
                                headers=headers)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.exporter.otlp.proto.http import Compression

    return OTLPSpanExporter(endpoint=args.endpoint, headers=headers, compression=Compression.Gzip,
                            certificate_file=args.ca_file,
                            client_certificate_file=args.client_cert,
                            client_key_file=args.client_key)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--protocol", choices=["grpc", "http"], required=True)
    p.add_argument("--endpoint", required=True)
    p.add_argument("--token")
    p.add_argument("--basic")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--root-attribute", action="append", default=[], metavar="KEY=VALUE",
                   help="also set this attribute on every root span (repeat)")
    p.add_argument("--ca-file", help="the CA that issued the server's certificate (TLS)")
    p.add_argument("--client-cert", help="a client certificate to present (mutual TLS)")
    p.add_argument("--client-key", help="the client certificate's key")
    args = p.parse_args()

    if args.basic:
        auth = "Basic " + base64.b64encode(args.basic.encode()).decode()
    else:
        auth = "Bearer " + args.token
    headers = {"authorization": auth}

    resource = Resource.create({
        "service.name": "support-bot",
        "service.version": "2026.11.2",
        "deployment.environment.name": "production",
    })
    provider = TracerProvider(resource=resource)
    processor = BatchSpanProcessor(exporter(args, headers))
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("vigil-e2e")

    sent = []
    for i in range(args.runs):
        with tracer.start_as_current_span("support-bot.run") as root:
            root.set_attribute("gen_ai.operation.name", "invoke_agent")
            root.set_attribute("gen_ai.agent.name", "support-bot")
            root.set_attribute("gen_ai.agent.version", "1.4.0")
            root.set_attribute("session.id", f"sess-{i // 2}")
            root.set_attribute("user.id", f"user-{i % 2}@example.com")
            root.set_attribute("vigil.task.type", "refund_request")
            root.set_attribute("vigil.data.classification", ["pii"])
            for pair in args.root_attribute:
                key, value = pair.split("=", 1)
                root.set_attribute(key, value)
            with tracer.start_as_current_span("chat gpt-4o") as llm:
                llm.set_attribute("gen_ai.operation.name", "chat")
                llm.set_attribute("gen_ai.provider.name", "openai")
                llm.set_attribute("gen_ai.request.model", "gpt-4o")
                llm.set_attribute("gen_ai.usage.input_tokens", 1000 + i)
                llm.set_attribute("gen_ai.usage.output_tokens", 200 + i)
                llm.set_attribute("vigil.prompt.id", "refund-policy")
                llm.set_attribute("vigil.prompt.version", "v7")
                llm.set_attribute("custom.flag", "kept")
            with tracer.start_as_current_span("execute_tool lookup_order") as tool:
                tool.set_attribute("gen_ai.operation.name", "execute_tool")
                tool.set_attribute("gen_ai.tool.name", "lookup_order")
                tool.set_attribute("gen_ai.tool.call.arguments", json.dumps({"order": i}))
                if i % 3 == 2:
                    tool.set_status(Status(StatusCode.ERROR, "order service timed out"))
            spans = {}
            for name, s in (("root", root), ("llm", llm), ("tool", tool)):
                ctx = s.get_span_context()
                spans[name] = format(ctx.span_id, "016x")
            sent.append({
                "trace_id": format(root.get_span_context().trace_id, "032x"),
                "spans": spans,
                "session_id": f"sess-{i // 2}",
                "user_id": f"user-{i % 2}@example.com",
                "input_tokens": 1000 + i,
                "output_tokens": 200 + i,
                "tool_failed": i % 3 == 2,
            })
    ok = provider.force_flush(30_000)
    provider.shutdown()
    json.dump({"flushed": ok, "runs": sent}, sys.stdout)


if __name__ == "__main__":
    main()
