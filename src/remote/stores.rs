//! The Google Cloud Storage and Azure Blob stores of `gs://` and `az://`
//! sources (the `remote` feature), each set up from its cloud's standard
//! settings in the environment, as `object_store`'s builders read them.
//!
//! Kept apart from the transfer (`fetch`) so that adding a cloud is adding a
//! builder here: the transfer, the pin and the spool are the same for every
//! store. Credentials are whatever the builder finds (service account files
//! and keys, application default credentials and the metadata server for
//! GCS; account keys, SAS tokens, workload and managed identity for Azure),
//! and emulators are reached through the builders' own endpoint settings.
//! Plain `http` is refused unless asked for (`GOOGLE_ALLOW_HTTP`,
//! `AZURE_ALLOW_HTTP`, or Azure's emulator mode, which implies it).

use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::{ClientOptions, ObjectStore, RetryConfig};

/// A GCS store for `bucket`, from `GoogleCloudStorageBuilder::from_env`
/// (`GOOGLE_SERVICE_ACCOUNT`, `GOOGLE_SERVICE_ACCOUNT_KEY`,
/// `GOOGLE_APPLICATION_CREDENTIALS`, else the metadata server; the endpoint
/// from `GOOGLE_BASE_URL` or a service account file's `gcs_base_url`).
/// `endpoint` (`--gcs-endpoint`) wins over the environment's.
pub(super) fn gcs(
    bucket: &str,
    client: ClientOptions,
    retry: RetryConfig,
    endpoint: Option<&str>,
) -> object_store::Result<Box<dyn ObjectStore>> {
    let mut b = GoogleCloudStorageBuilder::from_env()
        .with_bucket_name(bucket)
        .with_client_options(client)
        .with_retry(retry);
    if let Some(e) = endpoint {
        b = b.with_base_url(e);
    }
    Ok(Box::new(b.build()?))
}

/// An Azure Blob store for `container`, from `MicrosoftAzureBuilder::from_env`
/// (`AZURE_STORAGE_ACCOUNT_NAME` with `AZURE_STORAGE_ACCOUNT_KEY`,
/// `AZURE_STORAGE_SAS_KEY`, a client secret, workload or managed identity;
/// the endpoint from `AZURE_STORAGE_ENDPOINT`, or Azurite's with
/// `AZURE_STORAGE_USE_EMULATOR=true` and `AZURITE_BLOB_STORAGE_URL`).
/// `endpoint` (`--azure-endpoint`) wins over the environment's.
pub(super) fn azure(
    container: &str,
    client: ClientOptions,
    retry: RetryConfig,
    endpoint: Option<&str>,
) -> object_store::Result<Box<dyn ObjectStore>> {
    let mut b = MicrosoftAzureBuilder::from_env()
        .with_container_name(container)
        .with_client_options(client)
        .with_retry(retry);
    if let Some(e) = endpoint {
        b = b.with_endpoint(e.to_string());
    }
    Ok(Box::new(b.build()?))
}
