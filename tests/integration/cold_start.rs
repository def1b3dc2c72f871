//! What a cold instance asks of the provider: discovery and the JWKS come from the
//! store's shared copy, not from a provider round trip on every cold start.

use std::sync::Arc;

use bff::App;
use bff::domain::secret::IdToken;
use bff::store::Store;
use bff_tests::faulty_idp::{IdTokenSpec, Scenario, spawn_app_against, unix_now};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_instance_reuses_the_shared_discovery_and_jwks() {
    const NONCE: &str = "cold-start-nonce";
    let warm = spawn_app_against(Scenario::honest()).await;
    let token = IdToken::new(warm.idp.mint_id_token(&IdTokenSpec::valid(), Some(NONCE)));
    warm.app
        .oidc
        .verify_id_token(&token, Some(NONCE), unix_now())
        .await
        .expect("first instance verifies");
    assert_eq!((warm.idp.discovery_fetches(), warm.idp.jwks_fetches()), (1, 1));

    // A new instance on the same store: nothing cached in its memory yet.
    let store: Arc<dyn Store> = warm.store.clone();
    let cold = App::new(warm.app.config.clone(), store).expect("cold instance");
    cold.oidc
        .verify_id_token(&token, Some(NONCE), unix_now())
        .await
        .expect("cold instance verifies");
    assert!(cold.oidc.metadata().await.is_ok());
    assert_eq!(
        (warm.idp.discovery_fetches(), warm.idp.jwks_fetches()),
        (1, 1),
        "the cold instance asked the provider for nothing"
    );
}
