"""Checks of template.yaml that a linter cannot know: least privilege, secrets kept
secret, one origin with origin verification, durable state, operations.

Reads the template with cfn-lint's own YAML decoder (short-form intrinsics become
{"Ref": ...}, {"Fn::GetAtt": [...]}), so it runs offline in the tool environment that
infra/sam/check.sh builds:

    .local/sam-venv/bin/python infra/sam/test_template.py [template.yaml]

Prints one line per failed check and a last line "N passed, N failed"; exits non-zero
when any check failed.
"""

import json
import sys
import traceback
from pathlib import Path

from cfnlint.decode import decode

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "template.yaml"

# What each function is, and exactly what it may do. The table actions follow the code
# (shared/src/store/dynamodb.rs): put_transaction, put_session, update_session, first_use
# and put_document are PutItem (update_session is a conditional whole-item put),
# take_transaction and delete_session are DeleteItem, get_session and get_document are
# GetItem, the index lookups are Query. Every function reads discovery or JWKS through the
# store's document cache (get_document, put_document). Every function seals or opens
# tokens, so every one reads the token keys; only those that authenticate at the
# provider's token, pushed-authorization or revocation endpoint read the client secret.
FUNCTIONS = {
    "LoginFunction": {
        "binary": "bff-login",
        "table_actions": {"dynamodb:GetItem", "dynamodb:PutItem"},
        "secrets": {"ClientSecretArn", "TokenKeysArn", "OriginVerifySecret"},
    },
    "CallbackFunction": {
        "binary": "bff-callback",
        "table_actions": {"dynamodb:GetItem", "dynamodb:DeleteItem", "dynamodb:PutItem"},
        "secrets": {"ClientSecretArn", "TokenKeysArn", "OriginVerifySecret"},
    },
    "SessionFunction": {
        "binary": "bff-session",
        "table_actions": {"dynamodb:GetItem", "dynamodb:DeleteItem", "dynamodb:PutItem"},
        # sessions_of_sub only: logout of every session of the user.
        "index_actions": {"dynamodb:Query"},
        "indexes": ["sub-index"],
        "secrets": {"ClientSecretArn", "TokenKeysArn", "OriginVerifySecret"},
    },
    "ProxyFunction": {
        "binary": "bff-proxy",
        "table_actions": {"dynamodb:GetItem", "dynamodb:DeleteItem", "dynamodb:PutItem"},
        "secrets": {"ClientSecretArn", "TokenKeysArn", "OriginVerifySecret"},
    },
    "BackchannelLogoutFunction": {
        "binary": "bff-backchannel",
        "table_actions": {"dynamodb:GetItem", "dynamodb:DeleteItem", "dynamodb:PutItem"},
        "index_actions": {"dynamodb:Query"},
        "secrets": {"TokenKeysArn", "OriginVerifySecret"},
    },
}
# The functions that authenticate at the provider's token endpoint, and so sign client
# assertions with the KMS key when ClientKmsKeyArn is set.
# Every function that authenticates at the provider: the token endpoint, or (login) PAR.
CLIENT_KEY_USERS = {"LoginFunction", "CallbackFunction", "SessionFunction", "ProxyFunction"}
CLIENT_KEY_ACTIONS = {"kms:Sign", "kms:GetPublicKey"}
LOG_ACTIONS = {"logs:CreateLogStream", "logs:PutLogEvents"}
# With the Tracing parameter at Active only: how Lambda sends the sampled invocations'
# segments. These actions take no resource-level permissions (Resource "*").
XRAY_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
TRACING_CONDITION = "HasActiveTracing"
SECRET_ACTIONS = {"secretsmanager:GetSecretValue", "secretsmanager:BatchGetSecretValue"}
# Actions that take no resource-level permission, so only Resource "*": X-Ray's, and the
# batched secret read (which returns only the secrets GetSecretValue is granted on).
NO_RESOURCE_ACTIONS = XRAY_ACTIONS | {"secretsmanager:BatchGetSecretValue"}

# Variables that hold a secret's value: a function may only get their *_ARN reference.
SECRET_VARIABLES = {"BFF_CLIENT_SECRET", "BFF_ORIGIN_VERIFY", "BFF_TOKEN_KEYS"}
SECRET_REFERENCES = {
    "BFF_CLIENT_SECRET_ARN": "ClientSecretArn",
    "BFF_TOKEN_KEYS_ARN": "TokenKeysArn",
    "BFF_ORIGIN_VERIFY_ARN": "OriginVerifySecret",
}

# Which function URL serves which CloudFront path, and which methods it must allow.
ALL_METHODS = {"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "POST", "DELETE"}
BEHAVIORS = {
    "/auth/login": ("LoginFunction", {"GET", "HEAD"}),
    "/auth/callback": ("CallbackFunction", {"GET", "HEAD"}),
    "/auth/me": ("SessionFunction", {"GET", "HEAD"}),
    "/auth/logout": ("SessionFunction", ALL_METHODS),
    "/auth/backchannel-logout": ("BackchannelLogoutFunction", ALL_METHODS),
    "/api/*": ("ProxyFunction", ALL_METHODS),
}
CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
ALL_VIEWER_EXCEPT_HOST = "b689b0a8-53d0-40ab-baf2-68738e2966ac"

# The code's outbound timeouts (shared/src/oidc.rs, shared/src/config.rs).
PROVIDER_CALL_SECS = 8
CLOUDFRONT_MAX_ORIGIN_READ_SECS = 60

template, problems = decode(str(TEMPLATE_PATH))
if problems or template is None:
    print(f"cannot read {TEMPLATE_PATH}: {problems}")
    print("0 passed, 1 failed")
    sys.exit(1)

RESOURCES = template["Resources"]
PARAMETERS = template["Parameters"]
GLOBALS = template.get("Globals", {}).get("Function", {})
DISTRIBUTION = RESOURCES["Distribution"]["Properties"]["DistributionConfig"]


# ---------------------------------------------------------------- helpers


def resources_of(kind):
    return {name: r for name, r in RESOURCES.items() if r["Type"] == kind}


def prop(function, name):
    """A function property, falling back to Globals as SAM does."""
    return RESOURCES[function]["Properties"].get(name, GLOBALS.get(name))


def environment(function):
    """A function's environment variables with Globals merged in, as SAM does."""
    merged = dict(GLOBALS.get("Environment", {}).get("Variables", {}))
    merged.update(RESOURCES[function]["Properties"].get("Environment", {}).get("Variables", {}))
    return merged


def as_list(value):
    return value if isinstance(value, list) else [value]


def role_of(function):
    role = prop(function, "Role")
    assert isinstance(role, dict) and "Fn::GetAtt" in role, f"{function}: Role must be !GetAtt <its role>.Arn"
    name, attribute = role["Fn::GetAtt"]
    assert attribute == "Arn" and RESOURCES[name]["Type"] == "AWS::IAM::Role", f"{function}: Role is not a role"
    return name


def conditional_statements(role):
    """(condition, statement) for every statement of a role's policies; condition is None
    for one that always applies, else the name in its !If [condition, statement, NoValue]."""
    props = RESOURCES[role]["Properties"]
    for policy in props.get("Policies", []):
        for statement in as_list(policy["PolicyDocument"]["Statement"]):
            if "Fn::If" in statement:
                condition, when_true, when_false = statement["Fn::If"]
                assert when_false == {"Ref": "AWS::NoValue"}, f"{role}: a statement swapped for another"
                yield condition, when_true
            else:
                yield None, statement


def statements(role):
    """Every statement of a role's policies, conditional ones included (all parameters on)."""
    for _, statement in conditional_statements(role):
        yield statement


def all_identity_statements():
    """Every statement of every identity policy in the template (roles and policies)."""
    for name, resource in RESOURCES.items():
        if resource["Type"] == "AWS::IAM::Role":
            for statement in statements(name):
                yield name, statement
        elif resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            for statement in as_list(resource["Properties"]["PolicyDocument"]["Statement"]):
                yield name, statement


def ref_name(value):
    """The logical name a Ref or GetAtt points to, else None."""
    if isinstance(value, dict):
        if "Ref" in value:
            return value["Ref"]
        if "Fn::GetAtt" in value:
            return value["Fn::GetAtt"][0]
    return None


def behaviors():
    return {b["PathPattern"]: b for b in DISTRIBUTION["CacheBehaviors"]}


def origins():
    found = {}
    for origin in DISTRIBUTION["Origins"]:
        if "Fn::If" in origin:  # the conditional front-end origin
            origin = origin["Fn::If"][1]
        found[origin["Id"]] = origin
    return found


def origin_function(origin):
    """The function whose URL an origin points to: !Select [2, !Split ["/", !GetAtt <Fn>Url.FunctionUrl]]."""
    domain = origin.get("DomainName")
    try:
        url_resource = domain["Fn::Select"][1]["Fn::Split"][1]["Fn::GetAtt"][0]
    except (TypeError, KeyError, IndexError):
        return None
    return url_resource[: -len("Url")] if url_resource.endswith("Url") else None


# ---------------------------------------------------------------- checks

CHECKS = []


def check(fn):
    CHECKS.append(fn)
    return fn


@check
def every_function_is_a_cargo_lambda_binary_on_al2023():
    functions = resources_of("AWS::Serverless::Function")
    assert set(functions) == set(FUNCTIONS), f"functions {sorted(functions)} != {sorted(FUNCTIONS)}"
    for name, spec in FUNCTIONS.items():
        assert prop(name, "Runtime") == "provided.al2023", name
        assert prop(name, "Handler") == "bootstrap", name
        assert prop(name, "Architectures") == [{"Ref": "Architecture"}], name
        metadata = RESOURCES[name].get("Metadata", {})
        assert metadata.get("BuildMethod") == "rust-cargolambda", name
        assert metadata.get("BuildProperties", {}).get("Binary") == spec["binary"], name
    architecture = PARAMETERS["Architecture"]
    assert architecture["Default"] == "arm64" and set(architecture["AllowedValues"]) == {"arm64", "x86_64"}


@check
def memory_is_128_to_256_mb_defaulting_to_128():
    memory = PARAMETERS["MemorySize"]
    assert (memory["Default"], memory["MinValue"], memory["MaxValue"]) == (128, 128, 256), memory
    for name in FUNCTIONS:
        assert prop(name, "MemorySize") == {"Ref": "MemorySize"}, name


@check
def no_identity_policy_has_a_wildcard_action_or_resource():
    seen = 0
    for owner, statement in all_identity_statements():
        seen += 1
        for action in as_list(statement.get("Action", [])):
            assert isinstance(action, str) and "*" not in action, f"{owner}: wildcard action {action!r}"
        assert "NotAction" not in statement and "NotResource" not in statement, f"{owner}: Not* statement"
        for resource in as_list(statement.get("Resource", [])):
            if set(as_list(statement.get("Action", []))) <= NO_RESOURCE_ACTIONS:
                continue  # no resource-level permissions exist for them
            assert resource != "*", f"{owner}: Resource '*'"
            if isinstance(resource, str):
                assert "*" not in resource, f"{owner}: wildcard resource {resource!r}"
            if isinstance(resource, dict) and "Fn::Sub" in resource:
                text = resource["Fn::Sub"] if isinstance(resource["Fn::Sub"], str) else resource["Fn::Sub"][0]
                assert "*" not in text, f"{owner}: wildcard resource {text!r}"
    assert seen > 0, "no statements found"


@check
def no_role_has_managed_policies_and_functions_get_no_sam_policies():
    for name, role in resources_of("AWS::IAM::Role").items():
        assert "ManagedPolicyArns" not in role["Properties"], f"{name}: managed policies"
        trust = as_list(role["Properties"]["AssumeRolePolicyDocument"]["Statement"])
        assert [s["Principal"] for s in trust] == [{"Service": "lambda.amazonaws.com"}], f"{name}: trust"
    for name in FUNCTIONS:
        assert "Policies" not in RESOURCES[name]["Properties"], f"{name}: SAM Policies widen the role"


@check
def active_tracing_is_a_parameter_and_only_then_may_functions_write_to_x_ray():
    tracing = PARAMETERS["Tracing"]
    assert tracing["Default"] == "PassThrough" and set(tracing["AllowedValues"]) == {"PassThrough", "Active"}
    assert template["Conditions"][TRACING_CONDITION] == {"Fn::Equals": [{"Ref": "Tracing"}, "Active"]}
    for name in FUNCTIONS:
        assert prop(name, "Tracing") == {"Ref": "Tracing"}, f"{name}: Tracing"
        xray = [
            (condition, statement)
            for condition, statement in conditional_statements(role_of(name))
            if any(a.startswith("xray:") for a in as_list(statement["Action"]))
        ]
        assert len(xray) == 1, f"{name}: X-Ray statements {xray}"
        condition, statement = xray[0]
        assert condition == TRACING_CONDITION, f"{name}: X-Ray permission without active tracing"
        assert set(as_list(statement["Action"])) == XRAY_ACTIONS, f"{name}: X-Ray actions {statement['Action']}"
        assert as_list(statement["Resource"]) == ["*"], f"{name}: X-Ray resource"


@check
def each_function_has_its_own_role():
    roles = [role_of(name) for name in FUNCTIONS]
    assert len(set(roles)) == len(roles), f"shared roles: {roles}"


@check
def each_role_has_exactly_the_actions_its_function_uses():
    for name, spec in FUNCTIONS.items():
        role = role_of(name)
        expected = (
            spec["table_actions"] | spec.get("index_actions", set()) | LOG_ACTIONS | SECRET_ACTIONS | XRAY_ACTIONS
        )
        if name in CLIENT_KEY_USERS:
            expected |= CLIENT_KEY_ACTIONS
        actual = {a for s in statements(role) if s["Effect"] == "Allow" for a in as_list(s["Action"])}
        assert actual == expected, f"{name}: {sorted(actual)} != {sorted(expected)}"
        assert all(s["Effect"] == "Allow" for s in statements(role)), f"{role}: unexpected Deny"


@check
def table_actions_apply_to_this_table_and_queries_only_to_its_indexes():
    for name, spec in FUNCTIONS.items():
        for statement in statements(role_of(name)):
            actions = set(as_list(statement["Action"]))
            resources = as_list(statement["Resource"])
            if actions <= spec["table_actions"]:
                assert resources == [{"Fn::GetAtt": ["Table", "Arn"]}], f"{name}: table resource {resources}"
            elif actions <= spec.get("index_actions", set()):
                indexes = spec.get("indexes", ["sid-index", "sub-index"])
                assert resources == [
                    {"Fn::Sub": "${Table.Arn}/index/" + index} for index in indexes
                ], f"{name}: index resources {resources}"
            else:
                assert not any(a.startswith("dynamodb:") for a in actions), f"{name}: mixed statement {actions}"


@check
def only_the_token_endpoint_functions_sign_with_the_client_kms_key_and_only_when_it_is_set():
    parameter = PARAMETERS["ClientKmsKeyArn"]
    assert parameter["Default"] == "" and parameter["AllowedPattern"].startswith("^(arn:aws"), "an optional key ARN"
    assert ":key/" in parameter["AllowedPattern"], "a key ARN, not an alias: IAM resources name keys"
    assert template["Conditions"]["HasClientKmsKey"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "ClientKmsKeyArn"}, ""]}]
    }
    for name in FUNCTIONS:
        conditional = [(c, st) for c, st in conditional_statements(role_of(name)) if c == "HasClientKmsKey"]
        env = environment(name)
        if name not in CLIENT_KEY_USERS:
            assert conditional == [], f"{name}: must not use the client key"
            assert not {"BFF_CLIENT_KMS_KEY_ID", "BFF_CLIENT_AUTH", "BFF_CLIENT_ASSERTION_AUD"} & set(env), name
            continue
        assert len(conditional) == 1, f"{name}: one client-key statement"
        condition, statement = conditional[0]
        assert condition == "HasClientKmsKey", f"{name}: {condition}"
        assert statement["Effect"] == "Allow"
        assert set(as_list(statement["Action"])) == CLIENT_KEY_ACTIONS, f"{name}: {statement['Action']}"
        assert as_list(statement["Resource"]) == [{"Ref": "ClientKmsKeyArn"}], f"{name}: that key only"
        assert env["BFF_CLIENT_KMS_KEY_ID"] == {
            "Fn::If": ["HasClientKmsKey", {"Ref": "ClientKmsKeyArn"}, {"Ref": "AWS::NoValue"}]
        }, name
        assert env["BFF_CLIENT_AUTH"] == {
            "Fn::If": ["HasClientKmsKey", "private_key_jwt", {"Ref": "AWS::NoValue"}]
        }, name
        assert env["BFF_CLIENT_ASSERTION_AUD"] == {
            "Fn::If": ["HasClientKmsKey", {"Ref": "ClientAssertionAud"}, {"Ref": "AWS::NoValue"}]
        }, name


@check
def each_function_reads_exactly_its_secrets():
    for name, spec in FUNCTIONS.items():
        secrets = set()
        for statement in statements(role_of(name)):
            actions = set(as_list(statement["Action"]))
            if actions == {"secretsmanager:GetSecretValue"}:
                secrets |= {ref_name(r) for r in as_list(statement["Resource"])}
            elif actions == {"secretsmanager:BatchGetSecretValue"}:
                # The batch returns only what GetSecretValue is granted on, and has no
                # resource-level permission to narrow it by.
                assert as_list(statement["Resource"]) == ["*"], f"{name}: batch resource"
            else:
                assert not actions & SECRET_ACTIONS, f"{name}: secret actions mixed with others {actions}"
        assert secrets == spec["secrets"], f"{name}: reads {sorted(secrets)}, should read {sorted(spec['secrets'])}"


@check
def logs_go_only_to_the_function_s_own_group():
    for name in FUNCTIONS:
        group = ref_name(prop(name, "LoggingConfig")["LogGroup"])
        for statement in statements(role_of(name)):
            if set(as_list(statement["Action"])) & LOG_ACTIONS:
                assert set(as_list(statement["Action"])) == LOG_ACTIONS, name
                assert as_list(statement["Resource"]) == [{"Fn::GetAtt": [group, "Arn"]}], f"{name}: logs resource"


@check
def secrets_reach_functions_only_by_reference():
    for name, spec in FUNCTIONS.items():
        env = environment(name)
        plain = SECRET_VARIABLES & set(env)
        assert not plain, f"{name}: plain secret variables {sorted(plain)}"
        for key, value in env.items():
            assert "resolve:secretsmanager" not in str(value), f"{name}: {key} resolves a secret into the environment"
            assert "resolve:ssm-secure" not in str(value), f"{name}: {key} resolves a secret into the environment"
        references = {k: ref_name(v) for k, v in env.items() if k.endswith("_ARN")}
        expected = {k: v for k, v in SECRET_REFERENCES.items() if v in spec["secrets"]}
        assert references == expected, f"{name}: references {references} != {expected}"
    for name in ("ClientSecret", "TokenKeys", "OriginVerify"):
        assert name not in PARAMETERS, f"{name} must not be a template parameter"
    assert not any(p.get("NoEcho") for p in PARAMETERS.values()), "a NoEcho parameter is a secret in the template"
    for name in ("ClientSecretArn", "TokenKeysArn"):
        assert PARAMETERS[name]["AllowedPattern"].startswith("^arn:aws"), f"{name} must only accept an ARN"
        assert "Default" not in PARAMETERS[name], f"{name} must be given"
    generated = RESOURCES["OriginVerifySecret"]
    assert generated["Type"] == "AWS::SecretsManager::Secret" and "GenerateSecretString" in generated["Properties"]
    assert "SecretString" not in generated["Properties"], "the origin-verify value must be generated, not written"


@check
def every_function_logs_json_to_a_group_with_retention():
    for name in FUNCTIONS:
        logging = prop(name, "LoggingConfig")
        assert logging and logging.get("LogFormat") == "JSON", f"{name}: LogFormat"
        group = RESOURCES[ref_name(logging["LogGroup"])]
        assert group["Type"] == "AWS::Logs::LogGroup", name
        assert group["Properties"].get("RetentionInDays") == {"Ref": "LogRetentionDays"}, f"{name}: retention"
    assert PARAMETERS["LogRetentionDays"]["Default"] == 30


@check
def every_function_has_error_and_throttle_alarms():
    alarms = resources_of("AWS::CloudWatch::Alarm").values()
    for name in FUNCTIONS:
        metrics = {
            a["Properties"]["MetricName"]
            for a in alarms
            if a["Properties"].get("Dimensions") == [{"Name": "FunctionName", "Value": {"Ref": name}}]
        }
        assert metrics == {"Errors", "Throttles"}, f"{name}: alarms on {sorted(metrics)}"


@check
def the_bff_metrics_have_alarms_notifying_the_topic_and_a_dashboard():
    namespace = {"Fn::Sub": "BFF/${AWS::StackName}"}
    for name in FUNCTIONS:
        assert environment(name).get("BFF_METRICS_NAMESPACE") == namespace, f"{name}: metrics namespace"
    topic = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
    watched = set()
    for alarm in resources_of("AWS::CloudWatch::Alarm").values():
        props = alarm["Properties"]
        stats = [props] + [m["MetricStat"]["Metric"] for m in props.get("Metrics", []) if "MetricStat" in m]
        names = {s["MetricName"] for s in stats if s.get("Namespace") == namespace}
        if names:
            assert props["AlarmActions"] == topic and props["OKActions"] == topic, sorted(names)
            for stat in stats:
                if stat.get("Namespace") == namespace:
                    assert stat["Dimensions"] == [{"Name": "Service", "Value": "bff"}], sorted(names)
            watched.add(frozenset(names))
    expected = {
        frozenset({"Errors5xx", "Requests"}),
        frozenset({"RefreshFailures"}),
        frozenset({"StoreErrors"}),
        frozenset({"LoginsFailed", "LoginsCompleted"}),
    }
    assert expected <= watched, f"alarms on {sorted(map(sorted, watched))}"
    dashboards = resources_of("AWS::CloudWatch::Dashboard")
    assert len(dashboards) == 1, sorted(dashboards)
    body = next(iter(dashboards.values()))["Properties"]["DashboardBody"]["Fn::Sub"]
    widgets = json.loads(body[0].replace("${AWS::Region}", "us-east-1").replace("${Namespace}", "BFF/x"))["widgets"]
    shown = {
        m[1]
        for w in widgets
        for m in w["properties"]["metrics"]
        if len(m) > 1 and isinstance(m[1], str) and m[1] not in (".", "...")
    }
    assert {"Requests", "Errors5xx", "LoginsFailed", "StoreErrors", "UpstreamLatency"} <= shown, shown


@check
def the_table_keeps_sessions_safe_and_indexed():
    table = RESOURCES["Table"]
    assert table["DeletionPolicy"] == "Retain" and table["UpdateReplacePolicy"] == "Retain"
    props = table["Properties"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert props["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    attributes = {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]}
    assert attributes == {"pk": "S", "sid": "S", "sub": "S"}, attributes
    indexes = {i["IndexName"]: i for i in props["GlobalSecondaryIndexes"]}
    assert set(indexes) == {"sid-index", "sub-index"}
    for name, key in (("sid-index", "sid"), ("sub-index", "sub")):
        assert indexes[name]["KeySchema"] == [{"AttributeName": key, "KeyType": "HASH"}], name
        assert indexes[name]["Projection"] == {"ProjectionType": "KEYS_ONLY"}, name
    for name in FUNCTIONS:
        assert environment(name)["BFF_TABLE"] == {"Ref": "Table"}, name


@check
def function_urls_are_public_to_cloudfront_and_the_proxy_streams():
    for name in FUNCTIONS:
        url = RESOURCES[name]["Properties"]["FunctionUrlConfig"]
        assert url["AuthType"] == "NONE", name
        expected_mode = "RESPONSE_STREAM" if name == "ProxyFunction" else None
        assert url.get("InvokeMode") == expected_mode, f"{name}: InvokeMode {url.get('InvokeMode')}"


@check
def cloudfront_sends_the_origin_verify_header_to_every_function():
    by_function = {}
    for origin in origins().values():
        function = origin_function(origin)
        if function is None:
            continue
        by_function[function] = origin
        headers = {h["HeaderName"].lower(): h["HeaderValue"] for h in origin.get("OriginCustomHeaders", [])}
        value = headers.get("x-origin-verify")
        assert value == {
            "Fn::Sub": "{{resolve:secretsmanager:${OriginVerifySecret}:SecretString}}"
        }, f"{function}: X-Origin-Verify is {value!r}"
        assert origin["CustomOriginConfig"]["OriginProtocolPolicy"] == "https-only", function
    assert set(by_function) == set(FUNCTIONS), f"origins for {sorted(by_function)}"


@check
def each_path_reaches_its_function_uncached_with_all_viewer_headers_but_host():
    found = behaviors()
    for path, (function, methods) in BEHAVIORS.items():
        behavior = found.get(path)
        assert behavior, f"no behavior for {path}"
        origin = origins()[behavior["TargetOriginId"]]
        assert origin_function(origin) == function, f"{path} -> {origin_function(origin)}, not {function}"
        assert methods <= set(behavior["AllowedMethods"]), f"{path}: methods {behavior['AllowedMethods']}"
    for path, behavior in found.items():
        assert path.startswith("/auth/") or path.startswith("/api/"), f"unexpected behavior {path}"
        assert behavior["CachePolicyId"] == {"Fn::FindInMap": ["CloudFront", "Policies", "CachingDisabled"]}, path
        assert behavior["OriginRequestPolicyId"] == {
            "Fn::FindInMap": ["CloudFront", "Policies", "AllViewerExceptHostHeader"]
        }, path
        assert behavior["ViewerProtocolPolicy"] in ("https-only", "redirect-to-https"), path
        assert ref_name(behavior.get("ResponseHeadersPolicyId")) == "SecurityHeadersPolicy", path
    policies = template["Mappings"]["CloudFront"]["Policies"]
    assert policies["CachingDisabled"] == CACHING_DISABLED
    assert policies["AllViewerExceptHostHeader"] == ALL_VIEWER_EXCEPT_HOST
    assert "/auth/*" in found, "a catch-all keeps other /auth paths off the cached default"


@check
def the_operator_probes_of_bff_local_are_never_routed_to_a_function():
    from fnmatch import fnmatchcase

    for path in ("/healthz", "/readyz", "/metrics"):
        matched = [p for p in behaviors() if fnmatchcase(path, p)]
        assert not matched, f"{path} is routed by {matched}"
    # The default behaviour serves the front end, or answers 404 at the edge.
    default = DISTRIBUTION["DefaultCacheBehavior"]["Fn::If"]
    assert default[1]["TargetOriginId"] == "frontend", default[1]
    associations = default[2].get("FunctionAssociations", [])
    assert [ref_name(a["FunctionARN"]) for a in associations] == ["NotFoundFunction"], associations


@check
def the_front_end_is_optional_and_read_through_origin_access_control():
    condition = template["Conditions"]["HasFrontendBucket"]
    assert condition == {"Fn::Not": [{"Fn::Equals": [{"Ref": "FrontendBucket"}, ""]}]}
    oac = RESOURCES["FrontendOriginAccessControl"]
    assert oac["Condition"] == "HasFrontendBucket"
    assert oac["Properties"]["OriginAccessControlConfig"]["SigningBehavior"] == "always"
    frontend = origins()["frontend"]
    assert ref_name(frontend["OriginAccessControlId"]) == "FrontendOriginAccessControl"
    policy = RESOURCES["FrontendBucketPolicy"]
    assert policy["Condition"] == "HasFrontendBucket"
    [statement] = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert statement["Action"] == "s3:GetObject"
    assert "AWS:SourceArn" in statement["Condition"]["StringEquals"], "only this distribution may read"


@check
def security_headers_are_set():
    config = RESOURCES["SecurityHeadersPolicy"]["Properties"]["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]
    assert config["StrictTransportSecurity"]["AccessControlMaxAgeSec"] >= 31536000
    assert config["ContentTypeOptions"]["Override"] is True
    assert config["FrameOptions"]["FrameOption"] == "DENY"
    assert "ReferrerPolicy" in config and "ContentSecurityPolicy" in config


@check
def timeouts_cover_the_code_s_outbound_calls():
    # The whole worst path of each function, summed from the code's own constants, is
    # checked by shared/tests/template_timeouts.rs; these are the plain lower bounds.
    # A function's timeout may exceed CloudFront's wait for its origin: the browser then
    # gets CloudFront's 504 first, but the function is never stopped between the
    # provider's answer and the store write that keeps it (a rotated refresh token).
    assert prop("CallbackFunction", "Timeout") >= 3 * PROVIDER_CALL_SECS, "discovery, token and JWKS"
    assert prop("LoginFunction", "Timeout") >= PROVIDER_CALL_SECS
    assert prop("SessionFunction", "Timeout") >= 2 * PROVIDER_CALL_SECS
    assert prop("BackchannelLogoutFunction", "Timeout") >= 2 * PROVIDER_CALL_SECS
    proxy_timeout = prop("ProxyFunction", "Timeout")
    assert proxy_timeout == {"Fn::FindInMap": ["ProxyTimeout", {"Ref": "UpstreamTimeoutSecs"}, "Seconds"]}
    upstream = PARAMETERS["UpstreamTimeoutSecs"]
    assert upstream["Default"] == "20"
    proxy_origin = origins()["proxy"]["CustomOriginConfig"]["OriginReadTimeout"]
    for value in upstream["AllowedValues"]:
        seconds = template["Mappings"]["ProxyTimeout"][value]["Seconds"]
        assert seconds >= 3 * PROVIDER_CALL_SECS + 2 * int(value), f"upstream {value}: proxy timeout {seconds}"
        # CloudFront waits at least for one upstream call and at most its own limit.
        assert int(value) < proxy_origin <= CLOUDFRONT_MAX_ORIGIN_READ_SECS, f"upstream {value}: origin read timeout"
    assert environment("ProxyFunction")["BFF_UPSTREAM_TIMEOUT_SECS"] == {"Ref": "UpstreamTimeoutSecs"}
    for origin_id in ("login", "callback", "session", "backchannel-logout"):
        read = origins()[origin_id]["CustomOriginConfig"]["OriginReadTimeout"]
        function = origin_function(origins()[origin_id])
        assert PROVIDER_CALL_SECS < read <= CLOUDFRONT_MAX_ORIGIN_READ_SECS, f"{origin_id}: origin read timeout"
        assert prop(function, "Timeout") >= PROVIDER_CALL_SECS, f"{origin_id}: {function}"


@check
def the_profile_and_provider_options_reach_every_function():
    for name in FUNCTIONS:
        env = environment(name)
        assert env["BFF_PROFILE"] == {"Ref": "Profile"}, name
        assert env["BFF_USERINFO"] == {"Ref": "Userinfo"}, name
        assert env["BFF_PROVIDER_SESSION_CHECK_SECS"] == {"Ref": "ProviderSessionCheckSecs"}, name
        # Under fapi2 the profile turns PAR and DPoP on itself: an explicit `off` would stop it.
        for key, parameter in (("BFF_PAR", "Par"), ("BFF_DPOP", "Dpop")):
            expected = {"Fn::If": ["IsFapi2", {"Ref": "AWS::NoValue"}, {"Ref": parameter}]}
            assert env[key] == expected, f"{name}: {key}"
    assert template["Conditions"]["IsFapi2"] == {"Fn::Equals": [{"Ref": "Profile"}, "fapi2"]}
    assert set(PARAMETERS["Profile"]["AllowedValues"]) == {"default", "fapi2"}
    check_secs = PARAMETERS["ProviderSessionCheckSecs"]
    assert (check_secs["Default"], check_secs["MinValue"], check_secs["MaxValue"]) == (0, 0, 86400), check_secs


@check
def configuration_comes_from_validated_parameters():
    for name in FUNCTIONS:
        env = environment(name)
        for key in ("BFF_ISSUER", "BFF_CLIENT_ID", "BFF_PUBLIC_URL", "BFF_SCOPES", "BFF_AUTH_PARAMS",
                    "BFF_ALLOWED_ORIGINS", "BFF_SESSION_IDLE_SECS", "BFF_SESSION_MAX_SECS", "BFF_TABLE"):
            assert key in env, f"{name}: {key} missing"
    proxy = environment("ProxyFunction")
    # One API or several, never both: the other variable is left out.
    assert proxy["BFF_UPSTREAM_URL"] == {"Fn::If": ["HasApiRoutes", {"Ref": "AWS::NoValue"}, {"Ref": "UpstreamUrl"}]}
    assert proxy["BFF_APIS"] == {"Fn::If": ["HasApiRoutes", {"Ref": "ApiRoutes"}, {"Ref": "AWS::NoValue"}]}
    assert "OneWayToNameTheApis" in template["Rules"]
    for name, parameter in PARAMETERS.items():
        if parameter["Type"] == "String" and "AllowedValues" not in parameter:
            assert "AllowedPattern" in parameter, f"parameter {name} has no AllowedPattern"


@check
def outputs_name_the_public_and_callback_urls():
    outputs = template["Outputs"]
    for key in ("PublicUrl", "CallbackUrl"):
        assert key in outputs, key
    callback = outputs["CallbackUrl"]["Value"]["Fn::If"]
    assert all(branch["Fn::Sub"].endswith("/auth/callback") for branch in callback[1:]), callback


def main():
    passed = failed = 0
    for fn in CHECKS:
        try:
            fn()
        except AssertionError as error:
            failed += 1
            print(f"FAIL {fn.__name__}: {error}")
        except Exception:  # a malformed template: report it as a failure of this check
            failed += 1
            print(f"FAIL {fn.__name__}: {traceback.format_exc(limit=1).strip()}")
        else:
            passed += 1
            print(f"ok   {fn.__name__}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
