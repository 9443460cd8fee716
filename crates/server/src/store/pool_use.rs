//! How busy the connection pool is, for the metrics endpoint.

use super::Store;

/// The database pool at one moment.
#[derive(Debug, Clone, Copy)]
pub struct PoolUse {
    /// Connections open (idle or in use).
    pub size: u32,
    /// Of those, idle.
    pub idle: usize,
}

impl Store {
    /// The pool's connections now.
    pub fn pool_use(&self) -> PoolUse {
        PoolUse {
            size: self.pool.size(),
            idle: self.pool.num_idle(),
        }
    }
}
