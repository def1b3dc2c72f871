//! Secret references, resolved once per cold start.
//!
//! A deployed function holds no secret in its environment, only a reference to one: for
//! each variable `X` of [`SECRET_VARIABLES`], `X_ARN` names a Secrets Manager secret whose
//! text is `X`'s value. [`resolve`] reads every referenced secret once, before the
//! configuration is parsed, and [`ResolvedSecrets::lookup`] answers the plain environment
//! first and the resolved values second, in the shape
//! [`Config::from_lookup`](crate::platform::config::Config::from_lookup) reads. Setting both `X` and
//! `X_ARN` is a configuration error: two sources of one secret would leave it unclear
//! which one a deployment really uses.
//!
//! The secret store is a port ([`SecretSource`]) so the resolution rules are tested
//! without AWS; [`SecretsManager`] is its AWS adapter. This module never logs, and no
//! error it returns carries a secret's value: errors name the variable and, for a failed
//! read, the store's error code.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata as _, SdkError};

/// The variables that may be given by reference, as `<name>_ARN`.
///
/// `BFF_CLIENT_SECRET` is the client secret at the provider, `BFF_CLIENT_KEY` the PEM private
/// key of `private_key_jwt`, `BFF_ORIGIN_VERIFY` the value CloudFront proves itself with (see
/// [`crate::http::origin_verify`]), `BFF_TOKEN_KEYS` the keys that protect tokens at rest.
pub const SECRET_VARIABLES: [&str; 4] = [
    "BFF_CLIENT_SECRET",
    "BFF_CLIENT_KEY",
    "BFF_ORIGIN_VERIFY",
    "BFF_TOKEN_KEYS",
];

/// The suffix that turns a variable's name into the name of its reference.
pub const REFERENCE_SUFFIX: &str = "_ARN";

/// Whole-call and per-attempt timeouts of one secret read. Start-up waits for the reads,
/// and Lambda gives a function's initialisation 10 s in all.
const READ_TIMEOUT: Duration = Duration::from_secs(6);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a secret store could not give a secret's text. Never holds the text itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// The store answered an error, e.g. `AccessDeniedException` or
    /// `ResourceNotFoundException`.
    #[error("the secret store answered {code}")]
    Service {
        /// The store's error code.
        code: String,
    },
    /// The secret exists but holds no text (it is binary, or empty).
    #[error("the secret holds no text")]
    NotText,
    /// The store could not be reached, or did not answer in time.
    #[error("the secret store could not be reached ({reason})")]
    Unreachable {
        /// What went wrong: a fixed phrase such as `timed out`, never a value.
        reason: &'static str,
    },
}

/// A place secrets are read from: the port behind which Secrets Manager sits.
#[async_trait]
pub trait SecretSource: Send + Sync {
    /// The text of the secret `arn` names (its current version).
    async fn secret_string(&self, arn: &str) -> Result<String, SourceError>;

    /// The texts of several secrets in one exchange, in the order of `arns`, when the
    /// store offers such an exchange; `None` when it does not or refused the exchange
    /// itself (then each secret is read on its own). One exchange is one connection and
    /// one TLS handshake instead of one per secret: the CPU a cold start at 128 MB lacks.
    async fn secret_strings(&self, arns: &[String]) -> Option<Vec<Result<String, SourceError>>> {
        let _ = arns;
        None
    }
}

/// A secret reference that cannot be used; always names the variable, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretsError {
    /// Both the variable and its reference are set.
    #[error("{name} and {name}_ARN are both set; set only one of them")]
    Conflict {
        /// The variable's name (without `_ARN`).
        name: &'static str,
    },
    /// The reference is not a Secrets Manager secret ARN.
    #[error(
        "{name}_ARN is invalid: must be a Secrets Manager secret ARN (arn:<partition>:secretsmanager:<region>:<account>:secret:<name>)"
    )]
    InvalidReference {
        /// The variable's name (without `_ARN`).
        name: &'static str,
    },
    /// The referenced secret could not be read.
    #[error("{name}_ARN: cannot read the secret: {source}")]
    Unreadable {
        /// The variable's name (without `_ARN`).
        name: &'static str,
        /// Why the store could not give it.
        source: SourceError,
    },
}

/// The values read from the secret store, by variable name.
#[derive(Default)]
pub struct ResolvedSecrets {
    values: Vec<(&'static str, String)>,
}

impl std::fmt::Debug for ResolvedSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The names only: the values are secrets.
        f.debug_struct("ResolvedSecrets")
            .field("names", &self.names().collect::<Vec<_>>())
            .finish()
    }
}

impl ResolvedSecrets {
    /// The resolved value of `name`, when it was given by reference.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    /// The names of the variables that were resolved.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.values.iter().map(|(n, _)| *n)
    }

    /// A lookup for [`Config::from_lookup`](crate::platform::config::Config::from_lookup): `env`
    /// first (a blank value counts as unset), then the resolved secrets.
    pub fn lookup<'a>(&'a self, env: impl Fn(&str) -> Option<String> + 'a) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| non_blank(env(name)).or_else(|| self.get(name).map(str::to_owned))
    }
}

/// Reads every secret referenced in `env` from `source`.
///
/// For each name of [`SECRET_VARIABLES`]: nothing to do when `<name>_ARN` is unset (or
/// blank); a [`SecretsError::Conflict`] when `<name>` is set too; otherwise one read.
pub async fn resolve(
    env: impl Fn(&str) -> Option<String>,
    source: &dyn SecretSource,
) -> Result<ResolvedSecrets, SecretsError> {
    // Every reference is checked before any read, so a misconfiguration costs no call.
    let mut wanted: [Option<(&'static str, String)>; SECRET_VARIABLES.len()] = Default::default();
    for (slot, name) in wanted.iter_mut().zip(SECRET_VARIABLES) {
        let Some(arn) = non_blank(env(&format!("{name}{REFERENCE_SUFFIX}"))) else {
            continue;
        };
        if non_blank(env(name)).is_some() {
            return Err(SecretsError::Conflict { name });
        }
        let arn = arn.trim().to_owned();
        if !is_secret_arn(&arn) {
            return Err(SecretsError::InvalidReference { name });
        }
        *slot = Some((name, arn));
    }

    let arns: Vec<String> = wanted.iter().flatten().map(|(_, arn)| arn.clone()).collect();
    if arns.is_empty() {
        return Ok(ResolvedSecrets::default());
    }
    let texts = match source.secret_strings(&arns).await {
        Some(texts) if texts.len() == arns.len() => texts,
        // No batch: the reads run concurrently, each a round trip start-up waits for.
        _ => futures_util::future::join_all(arns.iter().map(|arn| source.secret_string(arn))).await,
    };
    let mut values = Vec::with_capacity(texts.len());
    for ((name, _), text) in wanted.into_iter().flatten().zip(texts) {
        match text {
            Ok(value) if !value.trim().is_empty() => values.push((name, value)),
            Ok(_) => {
                return Err(SecretsError::Unreadable {
                    name,
                    source: SourceError::NotText,
                });
            }
            Err(source) => return Err(SecretsError::Unreadable { name, source }),
        }
    }
    Ok(ResolvedSecrets { values })
}

/// Whether `arn` has the shape of a Secrets Manager secret ARN.
pub fn is_secret_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(7, ':').collect();
    matches!(
        parts.as_slice(),
        ["arn", partition, "secretsmanager", region, account, "secret", secret]
            if !partition.is_empty()
                && !region.is_empty()
                && account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && !secret.is_empty()
                && !secret.chars().any(char::is_whitespace)
    )
}

fn non_blank(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// AWS Secrets Manager as a [`SecretSource`].
#[derive(Debug, Clone)]
pub struct SecretsManager {
    client: Client,
}

impl SecretsManager {
    /// A source on `client`.
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// A source on the shared AWS configuration ([`crate::platform::aws::sdk_config`]: the function
    /// role's credentials and region in Lambda), with short timeouts: a read that hangs
    /// would otherwise use up the function's initialisation time.
    pub fn from_config(config: &aws_config::SdkConfig) -> Self {
        let config = aws_sdk_secretsmanager::config::Builder::from(config)
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .operation_timeout(READ_TIMEOUT)
                    .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                    .build(),
            )
            .build();
        Self::new(Client::from_conf(config))
    }
}

#[async_trait]
impl SecretSource for SecretsManager {
    async fn secret_string(&self, arn: &str) -> Result<String, SourceError> {
        let output = self
            .client
            .get_secret_value()
            .secret_id(arn)
            .send()
            .await
            .map_err(source_error)?;
        output.secret_string().map(str::to_owned).ok_or(SourceError::NotText)
    }

    /// `BatchGetSecretValue`: every secret in one request. A refusal of the batch itself
    /// (a role granted `GetSecretValue` only, as before the batch was used) gives `None`,
    /// so the secrets are then read one by one; a timeout does not, as the reads would
    /// time out the same way.
    async fn secret_strings(&self, arns: &[String]) -> Option<Vec<Result<String, SourceError>>> {
        let output = match self
            .client
            .batch_get_secret_value()
            .set_secret_id_list(Some(arns.to_vec()))
            .send()
            .await
        {
            Ok(output) => output,
            Err(SdkError::ServiceError(_)) => return None,
            Err(err) => return Some(vec![Err(source_error(err)); arns.len()]),
        };
        let answers: Vec<BatchAnswer<'_>> = output
            .secret_values()
            .iter()
            .filter_map(|v| Some((v.arn()?, Ok(v.secret_string()))))
            .chain(output.errors().iter().filter_map(|e| {
                let code = e.error_code().unwrap_or("an unknown error");
                Some((e.secret_id()?, Err(code)))
            }))
            .collect();
        Some(arns.iter().map(|arn| batch_answer(arn, &answers)).collect())
    }
}

/// One secret of a batch answer: its ARN (or the id as asked, for an error) and its text
/// (`None` when binary) or error code.
type BatchAnswer<'a> = (&'a str, Result<Option<&'a str>, &'a str>);

/// The answer for `asked` among a batch's `answers`. Secrets Manager answers with full
/// ARNs, which end in `-` and six characters it chose, while a reference may leave that
/// suffix out, as `GetSecretValue` allows; an exact match wins over a suffixed one.
fn batch_answer(asked: &str, answers: &[BatchAnswer<'_>]) -> Result<String, SourceError> {
    let completes = |arn: &str| {
        arn.strip_prefix(asked)
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|suffix| suffix.len() == 6 && suffix.bytes().all(|b| b.is_ascii_alphanumeric()))
    };
    let found = answers
        .iter()
        .find(|(arn, _)| *arn == asked)
        .or_else(|| answers.iter().find(|(arn, _)| completes(arn)));
    match found {
        Some((_, Ok(Some(text)))) => Ok((*text).to_owned()),
        Some((_, Ok(None))) => Err(SourceError::NotText),
        Some((_, Err(code))) => Err(SourceError::Service {
            code: (*code).to_owned(),
        }),
        None => Err(SourceError::Service {
            code: "no answer for the secret in the batch".to_owned(),
        }),
    }
}

/// Reduces an SDK error to its code or kind: its message may quote the request.
fn source_error<E: aws_sdk_secretsmanager::error::ProvideErrorMetadata, R>(err: SdkError<E, R>) -> SourceError {
    match &err {
        SdkError::ServiceError(_) => SourceError::Service {
            code: err.code().unwrap_or("an unknown error").to_owned(),
        },
        SdkError::TimeoutError(_) => SourceError::Unreachable { reason: "timed out" },
        SdkError::DispatchFailure(_) => SourceError::Unreachable {
            reason: "connection failed",
        },
        SdkError::ResponseError(_) => SourceError::Unreachable {
            reason: "unreadable response",
        },
        SdkError::ConstructionFailure(_) => SourceError::Unreachable {
            reason: "request not built",
        },
        _ => SourceError::Unreachable { reason: "unknown" },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use super::*;
    use crate::platform::config::Config;

    const CLIENT_ARN: &str = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:bff/client-AbCdEf";
    const VERIFY_ARN: &str = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:bff/origin-verify-XyZ123";

    /// An in-memory secret store that records what was asked.
    #[derive(Default)]
    struct FakeSource {
        secrets: HashMap<&'static str, Result<String, SourceError>>,
        reads: Mutex<Vec<String>>,
        // Whether it answers batches; each batch asked for is recorded.
        batches: bool,
        batch_reads: Mutex<Vec<Vec<String>>>,
    }

    impl FakeSource {
        fn with(secrets: &[(&'static str, Result<&str, SourceError>)]) -> Self {
            Self {
                secrets: secrets
                    .iter()
                    .map(|(arn, v)| (*arn, v.clone().map(str::to_owned)))
                    .collect(),
                ..Self::default()
            }
        }

        fn batching(mut self) -> Self {
            self.batches = true;
            self
        }

        fn batch_reads(&self) -> Vec<Vec<String>> {
            self.batch_reads.lock().map(|r| r.clone()).unwrap_or_default()
        }

        fn reads(&self) -> Vec<String> {
            self.reads.lock().map(|r| r.clone()).unwrap_or_default()
        }
    }

    #[async_trait]
    impl SecretSource for FakeSource {
        async fn secret_string(&self, arn: &str) -> Result<String, SourceError> {
            if let Ok(mut reads) = self.reads.lock() {
                reads.push(arn.to_owned());
            }
            self.secrets.get(arn).cloned().unwrap_or_else(|| {
                Err(SourceError::Service {
                    code: "ResourceNotFoundException".into(),
                })
            })
        }

        async fn secret_strings(&self, arns: &[String]) -> Option<Vec<Result<String, SourceError>>> {
            if let Ok(mut batches) = self.batch_reads.lock() {
                batches.push(arns.to_vec());
            }
            if !self.batches {
                return None;
            }
            let answers: Vec<BatchAnswer<'_>> = self
                .secrets
                .iter()
                .map(|(arn, v)| match v {
                    Ok(text) => (*arn, Ok(Some(text.as_str()))),
                    Err(_) => (*arn, Err("AccessDeniedException")),
                })
                .collect();
            Some(arns.iter().map(|arn| batch_answer(arn, &answers)).collect())
        }
    }

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| vars.get(name).cloned()
    }

    #[tokio::test]
    async fn without_references_nothing_is_read_and_the_environment_is_unchanged() {
        let source = FakeSource::default();
        let env = env(&[("BFF_CLIENT_SECRET", "plain"), ("BFF_ISSUER", "https://id.example.com")]);
        let resolved = resolve(&env, &source).await.expect("resolves");
        assert!(source.reads().is_empty());
        assert_eq!(resolved.names().count(), 0);
        let lookup = resolved.lookup(&env);
        assert_eq!(lookup("BFF_CLIENT_SECRET").as_deref(), Some("plain"));
        assert_eq!(lookup("BFF_ISSUER").as_deref(), Some("https://id.example.com"));
        assert_eq!(lookup("BFF_ORIGIN_VERIFY"), None);
    }

    #[tokio::test]
    async fn every_reference_is_read_once_and_offered_under_the_variable_name() {
        let source = FakeSource::with(&[(CLIENT_ARN, Ok("from-store")), (VERIFY_ARN, Ok("edge-proof"))]);
        let env = env(&[
            ("BFF_CLIENT_SECRET_ARN", CLIENT_ARN),
            ("BFF_ORIGIN_VERIFY_ARN", VERIFY_ARN),
        ]);
        let resolved = resolve(&env, &source).await.expect("resolves");
        let lookup = resolved.lookup(&env);
        assert_eq!(lookup("BFF_CLIENT_SECRET").as_deref(), Some("from-store"));
        assert_eq!(lookup("BFF_ORIGIN_VERIFY").as_deref(), Some("edge-proof"));
        assert_eq!(lookup("BFF_TOKEN_KEYS"), None);
        let mut reads = source.reads();
        reads.sort();
        assert_eq!(reads, [CLIENT_ARN, VERIFY_ARN]);
    }

    #[tokio::test]
    async fn config_reads_the_client_secret_through_the_lookup() {
        let source = FakeSource::with(&[(CLIENT_ARN, Ok("from-store"))]);
        let env = env(&[
            ("BFF_ISSUER", "https://id.example.com"),
            ("BFF_CLIENT_ID", "client"),
            ("BFF_PUBLIC_URL", "https://app.example.com"),
            ("BFF_CLIENT_SECRET_ARN", CLIENT_ARN),
        ]);
        let resolved = resolve(&env, &source).await.expect("resolves");
        let config = Config::from_lookup(resolved.lookup(&env)).expect("configures");
        assert_eq!(config.client_secret.expect("resolved").secret(), "from-store");
    }

    #[tokio::test]
    async fn a_variable_set_both_plainly_and_by_reference_is_refused_without_reading() {
        let source = FakeSource::with(&[(CLIENT_ARN, Ok("from-store"))]);
        let env = env(&[
            ("BFF_CLIENT_SECRET", "plain-s3cret"),
            ("BFF_CLIENT_SECRET_ARN", CLIENT_ARN),
        ]);
        let err = resolve(&env, &source).await.expect_err("conflict");
        assert_eq!(
            err,
            SecretsError::Conflict {
                name: "BFF_CLIENT_SECRET"
            }
        );
        assert!(err.to_string().contains("BFF_CLIENT_SECRET and BFF_CLIENT_SECRET_ARN"));
        assert!(!err.to_string().contains("plain-s3cret"));
        assert!(source.reads().is_empty());
    }

    #[tokio::test]
    async fn blank_values_count_as_unset() {
        let source = FakeSource::with(&[(CLIENT_ARN, Ok("from-store"))]);
        // A blank plain value next to a reference is no conflict; the reference wins.
        let env1 = env(&[("BFF_CLIENT_SECRET", "  "), ("BFF_CLIENT_SECRET_ARN", CLIENT_ARN)]);
        let resolved = resolve(&env1, &source).await.expect("resolves");
        assert_eq!(
            resolved.lookup(&env1)("BFF_CLIENT_SECRET").as_deref(),
            Some("from-store")
        );
        // A blank reference is no reference.
        let env2 = env(&[("BFF_CLIENT_SECRET", "plain"), ("BFF_CLIENT_SECRET_ARN", "")]);
        let resolved = resolve(&env2, &source).await.expect("resolves");
        assert_eq!(resolved.lookup(&env2)("BFF_CLIENT_SECRET").as_deref(), Some("plain"));
        assert_eq!(source.reads().len(), 1);
    }

    #[tokio::test]
    async fn unusable_references_are_refused_naming_the_variable() {
        let cases: &[(&str, &str, SecretsError)] = &[
            (
                "BFF_ORIGIN_VERIFY_ARN",
                "not-an-arn",
                SecretsError::InvalidReference {
                    name: "BFF_ORIGIN_VERIFY",
                },
            ),
            (
                "BFF_CLIENT_SECRET_ARN",
                "arn:aws:ssm:eu-west-1:123456789012:parameter/x",
                SecretsError::InvalidReference {
                    name: "BFF_CLIENT_SECRET",
                },
            ),
            (
                "BFF_TOKEN_KEYS_ARN",
                "arn:aws:secretsmanager:eu-west-1:123456789012:secret:missing",
                SecretsError::Unreadable {
                    name: "BFF_TOKEN_KEYS",
                    source: SourceError::Service {
                        code: "ResourceNotFoundException".into(),
                    },
                },
            ),
        ];
        for (var, value, expected) in cases {
            let source = FakeSource::default();
            let err = resolve(env(&[(var, value)]), &source).await.expect_err(var);
            assert_eq!(&err, expected, "{var}={value}");
            assert!(err.to_string().starts_with(var), "{err}");
        }
    }

    #[tokio::test]
    async fn store_failures_name_the_variable_and_never_a_value() {
        let cases = [
            (
                Err(SourceError::Service {
                    code: "AccessDeniedException".into(),
                }),
                "BFF_CLIENT_SECRET_ARN: cannot read the secret: the secret store answered AccessDeniedException",
            ),
            (
                Err(SourceError::Unreachable { reason: "timed out" }),
                "BFF_CLIENT_SECRET_ARN: cannot read the secret: the secret store could not be reached (timed out)",
            ),
            (
                Err(SourceError::NotText),
                "BFF_CLIENT_SECRET_ARN: cannot read the secret: the secret holds no text",
            ),
            (
                Ok(" \n"),
                "BFF_CLIENT_SECRET_ARN: cannot read the secret: the secret holds no text",
            ),
        ];
        for (answer, message) in cases {
            let source = FakeSource::with(&[(CLIENT_ARN, answer)]);
            let err = resolve(env(&[("BFF_CLIENT_SECRET_ARN", CLIENT_ARN)]), &source)
                .await
                .expect_err(message);
            assert_eq!(err.to_string(), message);
        }
    }

    #[tokio::test]
    async fn only_the_listed_variables_are_resolved_and_debug_shows_no_value() {
        let source = FakeSource::with(&[(CLIENT_ARN, Ok("from-store"))]);
        let env = env(&[("BFF_ISSUER_ARN", CLIENT_ARN), ("BFF_CLIENT_SECRET_ARN", CLIENT_ARN)]);
        let resolved = resolve(&env, &source).await.expect("resolves");
        assert_eq!(resolved.names().collect::<Vec<_>>(), ["BFF_CLIENT_SECRET"]);
        assert_eq!(resolved.lookup(&env)("BFF_ISSUER"), None);
        let debug = format!("{resolved:?}");
        assert!(debug.contains("BFF_CLIENT_SECRET"));
        assert!(!debug.contains("from-store"));
    }

    #[test]
    fn secret_arns_are_recognised() {
        for ok in [
            CLIENT_ARN,
            "arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:a",
            "arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:path/with:colon",
        ] {
            assert!(is_secret_arn(ok), "{ok}");
        }
        for bad in [
            "",
            "my-secret",
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:",
            "arn:aws:secretsmanager:eu-west-1:1234:secret:x",
            "arn:aws:secretsmanager::123456789012:secret:x",
            "arn:aws:kms:eu-west-1:123456789012:key/x",
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:a b",
        ] {
            assert!(!is_secret_arn(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_store_that_batches_is_asked_once_for_every_secret() {
        let source = FakeSource::with(&[(CLIENT_ARN, Ok("s3cret")), (VERIFY_ARN, Ok("verify"))]).batching();
        let env = env(&[
            ("BFF_CLIENT_SECRET_ARN", CLIENT_ARN),
            ("BFF_ORIGIN_VERIFY_ARN", VERIFY_ARN),
        ]);
        let resolved = resolve(&env, &source).await.expect("resolved");
        assert_eq!(resolved.get("BFF_CLIENT_SECRET"), Some("s3cret"));
        assert_eq!(resolved.get("BFF_ORIGIN_VERIFY"), Some("verify"));
        assert_eq!(
            source.batch_reads(),
            vec![vec![CLIENT_ARN.to_owned(), VERIFY_ARN.to_owned()]]
        );
        assert!(source.reads().is_empty(), "no single read: {:?}", source.reads());
    }

    #[tokio::test]
    async fn a_refused_batch_falls_back_to_one_read_per_secret() {
        let source = FakeSource::with(&[(CLIENT_ARN, Ok("s3cret")), (VERIFY_ARN, Ok("verify"))]);
        let env = env(&[
            ("BFF_CLIENT_SECRET_ARN", CLIENT_ARN),
            ("BFF_ORIGIN_VERIFY_ARN", VERIFY_ARN),
        ]);
        let resolved = resolve(&env, &source).await.expect("resolved");
        assert_eq!(resolved.get("BFF_ORIGIN_VERIFY"), Some("verify"));
        assert_eq!(source.batch_reads().len(), 1);
        let mut reads = source.reads();
        reads.sort();
        assert_eq!(reads, vec![CLIENT_ARN.to_owned(), VERIFY_ARN.to_owned()]);
    }

    #[tokio::test]
    async fn a_secret_the_batch_could_not_read_names_its_variable() {
        let denied = SourceError::Service {
            code: "AccessDeniedException".into(),
        };
        let source = FakeSource::with(&[(CLIENT_ARN, Ok("s3cret")), (VERIFY_ARN, Err(denied.clone()))]).batching();
        let env = env(&[
            ("BFF_CLIENT_SECRET_ARN", CLIENT_ARN),
            ("BFF_ORIGIN_VERIFY_ARN", VERIFY_ARN),
        ]);
        let err = resolve(&env, &source).await.expect_err("refused");
        assert_eq!(
            err,
            SecretsError::Unreadable {
                name: "BFF_ORIGIN_VERIFY",
                source: denied
            }
        );
        assert!(!err.to_string().contains("s3cret"));
    }

    #[test]
    fn a_batch_answer_is_found_by_its_full_or_its_partial_arn_and_nothing_else() {
        let partial = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:bff/client";
        let answers: Vec<BatchAnswer<'_>> = vec![
            (
                "arn:aws:secretsmanager:eu-west-1:123456789012:secret:bff/client-extra-AbCdEf",
                Ok(Some("other")),
            ),
            (CLIENT_ARN, Ok(Some("s3cret"))),
            (VERIFY_ARN, Ok(None)),
        ];
        assert_eq!(batch_answer(CLIENT_ARN, &answers), Ok("s3cret".to_owned()));
        assert_eq!(batch_answer(partial, &answers), Ok("s3cret".to_owned()));
        assert_eq!(batch_answer(VERIFY_ARN, &answers), Err(SourceError::NotText));
        // A name that only begins like the one asked for is another secret.
        let other_only = &answers[..1];
        assert!(matches!(
            batch_answer(partial, other_only),
            Err(SourceError::Service { .. })
        ));
    }
}
