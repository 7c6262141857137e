//! What domain job handlers need besides the pool the runtime hands them: the Meta client,
//! the key that decrypts account secrets, and where blobs go. Built once per process from the
//! shared configuration and captured by the handler closures.

use std::{path::PathBuf, sync::Arc};

use wharf_shared::{crypto::SecretBox, meta::MetaClient, Config};

#[derive(Clone)]
pub struct WorkerDeps(Arc<Inner>);

pub struct Inner {
    pub meta: MetaClient,
    pub secrets: SecretBox,
    pub blob_dir: PathBuf,
}

impl WorkerDeps {
    pub fn from_config(config: &Config) -> Self {
        Self(Arc::new(Inner {
            meta: MetaClient::from_config(config),
            secrets: SecretBox::new(config.secret_key.expose()),
            blob_dir: config.blob_dir.clone(),
        }))
    }
}

impl std::ops::Deref for WorkerDeps {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}
