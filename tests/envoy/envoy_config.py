"""Writes the Envoy suite's static configuration (JSON, which Envoy reads as YAML) to stdout.

Three listeners share one filter chain: http_connection_manager -> ext_authz (gRPC to an iamlet
sidecar over HTTP/2, transport API v3, failing closed) -> router to the upstream. On
`protected` every route is checked by the sidecar at --iamlet (TCP); `/body/` also sends the
request body. `protected-uds` is the same, checked by the sidecar at --iamlet-uds (a Unix
socket: Envoy's pipe address, as deploy/examples/envoy/uds has it). On `direct` the ext_authz
filter is disabled per route (ExtAuthzPerRoute.disabled), so the bench compares the same Envoy
with and without the check. On every listener `/signed/bench/` is answered by Envoy itself
(direct_response, after the check where there is one), so the bench measures Envoy and the
check, not the upstream.

Usage: python3 envoy_config.py --admin PORT --protected PORT --protected-uds PORT --direct PORT
       --upstream PORT --iamlet HOST:PORT --iamlet-uds PATH
"""

import argparse
import json

EXT_AUTHZ = "envoy.filters.http.ext_authz"
TYPES = "type.googleapis.com/envoy.extensions"


def address(host, port):
    return {"socket_address": {"address": host, "port_value": int(port)}}


def cluster(name, where, http2=False):
    c = {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": where}}]}],
        },
    }
    if http2:
        c["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": f"{TYPES}.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        }
    return c


def per_route(settings):
    return {EXT_AUTHZ: {"@type": f"{TYPES}.filters.http.ext_authz.v3.ExtAuthzPerRoute", **settings}}


def listener(name, port, routes, iamlet="iamlet"):
    return {
        "name": name,
        "address": address("127.0.0.1", port),
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": f"{TYPES}.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": name,
                "route_config": {
                    "name": name,
                    "virtual_hosts": [{"name": name, "domains": ["*"], "routes": routes}],
                },
                "http_filters": [
                    {
                        "name": EXT_AUTHZ,
                        "typed_config": {
                            "@type": f"{TYPES}.filters.http.ext_authz.v3.ExtAuthz",
                            "transport_api_version": "V3",
                            "grpc_service": {
                                # iamlet's HTTP/2 server takes a host name as :authority (over
                                # a socket, not its path).
                                "envoy_grpc": {"cluster_name": iamlet, "authority": "localhost"},
                                "timeout": "2s",
                            },
                            # An unreachable or failing iamlet refuses the request.
                            "failure_mode_allow": False,
                        },
                    },
                    {
                        "name": "envoy.filters.http.router",
                        "typed_config": {"@type": f"{TYPES}.filters.http.router.v3.Router"},
                    },
                ],
            },
        }]}],
    }


def main():
    p = argparse.ArgumentParser()
    for flag in ("--admin", "--protected", "--protected-uds", "--direct", "--upstream", "--iamlet",
                 "--iamlet-uds"):
        p.add_argument(flag, required=True)
    a = p.parse_args()
    iamlet_host, iamlet_port = a.iamlet.rsplit(":", 1)
    to_upstream = {"cluster": "upstream"}
    # Answered by Envoy's router once the filters let the request through.
    bench = {
        "match": {"prefix": "/signed/bench/"},
        "direct_response": {"status": 200, "body": {"inline_string": "{}"}},
    }
    protected = [
        bench,
        {
            "match": {"prefix": "/body/"},
            "route": to_upstream,
            # Only this route's check carries the body, whole (a partial body would not hash
            # to what the caller signed).
            "typed_per_filter_config": per_route({"check_settings": {"with_request_body": {
                "max_request_bytes": 65536,
                "allow_partial_message": False,
            }}}),
        },
        {"match": {"prefix": "/"}, "route": to_upstream},
    ]
    direct = [
        {**bench, "typed_per_filter_config": per_route({"disabled": True})},
        {
            "match": {"prefix": "/"},
            "route": to_upstream,
            "typed_per_filter_config": per_route({"disabled": True}),
        }
    ]
    config = {
        "admin": {"address": address("127.0.0.1", a.admin)},
        "static_resources": {
            "listeners": [
                listener("protected", a.protected, protected),
                listener("protected-uds", a.protected_uds, protected, iamlet="iamlet-uds"),
                listener("direct", a.direct, direct),
            ],
            "clusters": [
                cluster("iamlet", address(iamlet_host, iamlet_port), http2=True),
                cluster("iamlet-uds", {"pipe": {"path": a.iamlet_uds}}, http2=True),
                cluster("upstream", address("127.0.0.1", a.upstream)),
            ],
        },
    }
    print(json.dumps(config, indent=2))


main()
