//! A run of a flush's sorted batch, handed to the thread that writes it without a copy.

use std::ops::{Deref, Range};
use std::sync::Arc;

/// Items `range` of a batch shared by the flush that sorted it and the flushes' thread that
/// writes them (see [`super::sqlite_flushes`]): the thread needs data it can keep, and
/// copying tens of thousands of lines for it was the runtime's work, next to the token
/// checks.
#[derive(Debug, Clone)]
pub struct BatchRun<T> {
    batch: Arc<Vec<T>>,
    range: Range<usize>,
}

impl<T> BatchRun<T> {
    /// Items `range` of `batch` (clamped to its length).
    pub fn of(batch: &Arc<Vec<T>>, range: Range<usize>) -> Self {
        let end = range.end.min(batch.len());
        BatchRun {
            batch: Arc::clone(batch),
            range: range.start.min(end)..end,
        }
    }

    /// All of `items`.
    pub fn whole(items: Vec<T>) -> Self {
        let range = 0..items.len();
        BatchRun {
            batch: Arc::new(items),
            range,
        }
    }
}

impl<T> Deref for BatchRun<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        &self.batch[self.range.clone()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_its_range_of_the_batch_clamped_to_its_end() {
        let batch = Arc::new(vec![1, 2, 3, 4, 5]);
        assert_eq!(&*BatchRun::of(&batch, 1..3), &[2, 3]);
        assert_eq!(&*BatchRun::of(&batch, 3..10), &[4, 5]);
        assert!(BatchRun::of(&batch, 7..10).is_empty());
        assert_eq!(&*BatchRun::whole(vec!['a', 'b']), &['a', 'b']);
    }
}
