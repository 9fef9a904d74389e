"""Writes src/control_plane/api_model.json, the admin API's model: every operation of AWS's
IAM service model, the operations iamlet serves of EKS (pod identity associations), IAM Access
Analyzer and CloudTrail, and iamlet's own actions, with
each input member's CLI name (as the AWS CLI derives it), shape and first sentence of
documentation. `iamlet admin` reads it to refuse unknown options and print help offline.

Run with the AWS suite's venv (pinned botocore): `target/aws-venv/bin/python
tests/aws/api_model.py`. `test_api_model.py` fails when the committed file differs from
what this writes, so the file never drifts from the pinned model.
"""

import gzip
import html
import json
import os
import re
import sys

import botocore
from botocore import xform_name

# After botocore: the AWS CLI ships a copy of its own, which must not shadow the pinned one.
import awscli.clidriver  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUTPUT = os.path.join(REPO, "src", "control_plane", "api_model.json")

# EKS's operations iamlet serves (pod identity associations).
EKS_OPERATIONS = [
    "CreatePodIdentityAssociation",
    "DescribePodIdentityAssociation",
    "ListPodIdentityAssociations",
    "UpdatePodIdentityAssociation",
    "DeletePodIdentityAssociation",
]

# IAM Access Analyzer's operations iamlet serves for a tenant (issue 17: policy checks, unused
# access findings, policy generation), and CloudTrail's event history (issue 17: activity).
# Each keeps its service's shapes (renamed apart from IAM's) and its CLI's option names.
OTHER_SERVICES = {
    "accessanalyzer": [
        # issue 17 item 5: policy checks (src/policy/findings.rs)
        "ValidatePolicy",
        # Policy generation from activity (issue 17 item 8), from the usage the sidecars report.
        "StartPolicyGeneration",
        "GetGeneratedPolicy",
        "ListPolicyGenerations",
        "CancelPolicyGeneration",
        # unused access findings (issue 17 item 6)
        "CreateAnalyzer",
        "GetAnalyzer",
        "ListAnalyzers",
        "UpdateAnalyzer",
        "DeleteAnalyzer",
        "ListFindingsV2",
        "GetFindingV2",
        "GetFindingsStatistics",
        "UpdateFindings",
    ],
    "cloudtrail": [
        # issue 17, item 7: the tenant's management events (admin changes, refused admin
        # calls, the sidecars' STS calls).
        "LookupEvents",
    ],
}

# iamlet's own actions, in the model's terms (shapes are IAM's, or iamlet's below).
PAGING = [
    {"name": "Marker", "shape": "markerType"},
    {"name": "MaxItems", "shape": "maxItemsType"},
]
IAMLET_OPERATIONS = {
    "RevokeSessions": ("Denies every session of a role issued before now (AWS's AWSRevokeOlderSessions).",
                       [{"name": "RoleName", "shape": "roleNameType", "required": True}]),
    "UpdateOpenIDConnectProviderJwks": ("Replaces the signing keys an OIDC provider's tokens are verified with.",
                                        [{"name": "OpenIDConnectProviderArn", "shape": "arnType", "required": True},
                                         {"name": "Jwks", "shape": "jwksType", "required": True}]),
    "PutResourcePolicy": ("Sets the resource-based policy of a resource iamlet decides for.",
                          [{"name": "ResourceArn", "shape": "resourceArnType", "required": True},
                           {"name": "PolicyDocument", "shape": "policyDocumentType", "required": True}]),
    "GetResourcePolicy": ("Gets the resource-based policy of a resource.",
                          [{"name": "ResourceArn", "shape": "resourceArnType", "required": True}]),
    "DeleteResourcePolicy": ("Deletes the resource-based policy of a resource.",
                             [{"name": "ResourceArn", "shape": "resourceArnType", "required": True}]),
    "ListResourcePolicies": ("Lists the tenant's resource-based policies.", PAGING),
    "PutServiceControlPolicy": ("Sets a service control policy on the tenant (operators only).",
                                [{"name": "PolicyName", "shape": "policyNameType", "required": True},
                                 {"name": "PolicyDocument", "shape": "policyDocumentType", "required": True}]),
    "GetServiceControlPolicy": ("Gets a service control policy of the tenant.",
                                [{"name": "PolicyName", "shape": "policyNameType", "required": True}]),
    "DeleteServiceControlPolicy": ("Deletes a service control policy of the tenant (operators only).",
                                   [{"name": "PolicyName", "shape": "policyNameType", "required": True}]),
    "ListServiceControlPolicies": ("Lists the tenant's service control policies.", PAGING),
    "CreateRootAccessKey": ("Creates the root user's access key (shown once).", []),
    "DeleteRootAccessKey": ("Deletes the root user's access key.", []),
    "RotateIssuerKey": ("Adds a new session-token issuer key; older keys keep verifying until removed.", []),
    "ListIssuerKeys": ("Lists the tenant's session-token issuer keys (public parts only).", PAGING),
}
# The AWS CLI's paging of iamlet's own listings, as botocore's paginators describe AWS's.
IAMLET_PAGINATORS = {
    "ListResourcePolicies": "ResourcePolicies",
    "ListServiceControlPolicies": "Policies",
    "ListIssuerKeys": "IssuerKeys",
}
IAMLET_SHAPES = {
    "jwksType": {"type": "string", "min": 1, "max": 65536},
    # Any resource's ARN: IAM's arnType asks for at least 20 characters, which an S3 bucket's
    # ARN (`arn:aws:s3:::logs`) need not have.
    "resourceArnType": {"type": "string", "min": 1, "max": 2048},
}
# Members iamlet adds to AWS's operations.
IAMLET_MEMBERS = {
    "CreatePodIdentityAssociation": [
        {"name": "oidcProviderArn", "shape": "arnType", "required": True,
         "doc": "The cluster's OIDC provider in the tenant: pods' service-account tokens are verified offline with its keys."},
    ],
    "CreateOpenIDConnectProvider": [
        {"name": "Jwks", "shape": "jwksType", "required": True,
         "doc": "The provider's signing keys (a JWKS document): sidecars verify tokens offline."},
    ],
}


def load(service):
    base = os.path.join(os.path.dirname(botocore.__file__), "data", service)
    (version,) = os.listdir(base)
    with gzip.open(os.path.join(base, version, "service-2.json.gz")) as f:
        model = json.load(f)
    with open(os.path.join(base, version, "paginators-1.json")) as f:
        model["paginators"] = json.load(f)["pagination"]
    return version, model


def as_list(value):
    return value if isinstance(value, list) else [value]


def paginator(config):
    """botocore's paginator for an operation, every token a list; iamlet reads keys as member
    names, so an expression that is not one (none in IAM's and EKS's models) stops here."""
    out = {
        "input_token": as_list(config["input_token"]),
        "output_token": as_list(config["output_token"]),
        "more_results": config.get("more_results"),
        "limit_key": config.get("limit_key"),
        "result_key": as_list(config["result_key"]),
        "non_aggregate_keys": as_list(config.get("non_aggregate_keys", [])),
    }
    for key in out["output_token"] + out["result_key"] + out["non_aggregate_keys"] + [out["more_results"]]:
        if key is not None and not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", key):
            raise SystemExit(f"paginator key {key!r} is not a member name")
    return out


def sentence(doc):
    """The first sentence of an HTML documentation string, as plain text."""
    text = html.unescape(re.sub(r"<[^>]+>", " ", doc or ""))
    text = re.sub(r"\s+", " ", text).strip()
    end = re.search(r"(?<!e\.g)(?<!i\.e)\.(\s|$)", text)
    text = text[: end.start() + 1] if end else text
    return text[:240]


def shape_of(model, name, out, renames):
    """Copies `name` (and what it refers to) into `out`, without documentation."""
    key = renames.get(name, name)
    if key in out:
        return key
    shape = model["shapes"][name]
    copy = {k: shape[k] for k in ("type", "min", "max", "pattern", "enum", "sensitive") if k in shape}
    out[key] = copy
    if shape["type"] == "structure":
        required = set(shape.get("required", []))
        copy["members"] = [
            {"name": m, "shape": shape_of(model, ref["shape"], out, renames), "required": m in required}
            for m, ref in shape.get("members", {}).items()
        ]
    elif shape["type"] == "list":
        copy["member"] = shape_of(model, shape["member"]["shape"], out, renames)
    elif shape["type"] == "map":
        copy["key"] = shape_of(model, shape["key"]["shape"], out, renames)
        copy["value"] = shape_of(model, shape["value"]["shape"], out, renames)
    return key


def cli_options(service):
    """The AWS CLI's documented option for each member of each command (its undocumented
    aliases, such as `--authentication-code-1`, are left out)."""
    table = awscli.clidriver.create_clidriver()._get_command_table()[service]._get_command_table()
    options = {}
    for command, entry in table.items():
        names = {}
        for option, argument in entry.arg_table.items():
            member = getattr(argument, "_serialized_name", None)
            documented = not getattr(argument, "_UNDOCUMENTED", False)
            plain = type(argument).__name__ == "CLIArgument" and not option.startswith("no-")
            if member and documented and plain:
                names[member] = option
        options[command] = names
    return options


def with_paginator(op, config):
    """`op` with its paginator, when it has one."""
    if config is not None:
        op["paginator"] = paginator(config)
    return op


def operation(model, service, name, shapes, renames, options):
    op = model["operations"][name]
    command = xform_name(name, "-")
    members = []
    if "input" in op:
        request = model["shapes"][op["input"]["shape"]]
        required = set(request.get("required", []))
        for member, ref in request.get("members", {}).items():
            members.append({
                "name": member,
                "cli": options.get(command, {}).get(member, xform_name(member, "-")),
                "shape": shape_of(model, ref["shape"], shapes, renames),
                "required": member in required,
                "doc": sentence(ref.get("documentation")),
            })
    for extra in IAMLET_MEMBERS.get(name, []):
        members.append({"cli": xform_name(extra["name"], "-"), **extra})
    # The response's top-level members: the admin API's answers are checked against them.
    output = []
    if "output" in op:
        response = model["shapes"][op["output"]["shape"]]
        required = set(response.get("required", []))
        output = [{"name": m, "required": m in required} for m in response.get("members", {})]
    return with_paginator({"name": name, "service": service, "cli": command,
                           "doc": sentence(op.get("documentation")), "members": members,
                           "output": output},
                          model["paginators"].get(name))


def main():
    iam_version, iam = load("iam")
    eks_version, eks = load("eks")
    shapes = dict(IAMLET_SHAPES)
    iam_options, eks_options = cli_options("iam"), cli_options("eks")
    operations = [operation(iam, "iam", name, shapes, {}, iam_options)
                  for name in sorted(iam["operations"])]
    # EKS's shapes are kept apart from IAM's, whose names they could reuse.
    eks_renames = {n: "eks." + n for n in eks["shapes"]}
    operations += [operation(eks, "eks", name, shapes, eks_renames, eks_options)
                   for name in EKS_OPERATIONS]
    versions = {"iam": iam_version, "eks": eks_version}
    for service, names in OTHER_SERVICES.items():
        versions[service], model = load(service)
        renames = {n: service + "." + n for n in model["shapes"]}
        options = cli_options(service)
        operations += [operation(model, service, name, shapes, renames, options)
                       for name in names]
    for name, (doc, members) in sorted(IAMLET_OPERATIONS.items()):
        operations.append(with_paginator({
            "name": name, "service": "iamlet", "cli": xform_name(name, "-"), "doc": doc,
            "members": [{"cli": xform_name(m["name"], "-"), "required": False, "doc": "", **m}
                        for m in members],
        }, IAMLET_PAGINATORS.get(name) and {
            "input_token": "Marker", "output_token": "Marker", "more_results": "IsTruncated",
            "limit_key": "MaxItems", "result_key": IAMLET_PAGINATORS[name]}))
    for op in operations:
        for member in op["members"]:
            if member["shape"] not in shapes:
                shape_of(iam, member["shape"], shapes, {})
    document = {
        "source": f"botocore {botocore.__version__}: "
                  + ", ".join(f"{s} {v}" for s, v in versions.items())
                  + "; iamlet's own actions",
        "operations": operations,
        "shapes": dict(sorted(shapes.items())),
    }
    # One operation or shape per line: small, and a change reads as a line in a diff.
    lines = ["{", f'"source": {json.dumps(document["source"])},', '"operations": [']
    lines += [json.dumps(op, separators=(",", ":")) + ("," if i + 1 < len(operations) else "")
              for i, op in enumerate(operations)]
    lines += ["],", '"shapes": {']
    items = list(document["shapes"].items())
    lines += [f"{json.dumps(k)}:{json.dumps(v, separators=(',', ':'))}" + ("," if i + 1 < len(items) else "")
              for i, (k, v) in enumerate(items)]
    lines += ["}", "}"]
    text = "\n".join(lines) + "\n"
    if "--check" in sys.argv:
        with open(OUTPUT) as f:
            return 0 if f.read() == text else 1
    with open(OUTPUT, "w") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
