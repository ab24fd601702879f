//! Helpers shared by the gray-actix tests.
#![allow(dead_code, unreachable_pub)]

/// A streamed response of `count` items, each made by `item` when actix polls for it —
/// after the handler has returned.
pub struct Items<F> {
    pub count: u8,
    pub item: F,
}

impl<F: FnMut() -> String + Unpin> futures_core::Stream for Items<F> {
    type Item = Result<actix_web::web::Bytes, std::io::Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        if self.count == 0 {
            return std::task::Poll::Ready(None);
        }
        self.count -= 1;
        let item = actix_web::web::Bytes::from((self.item)());
        std::task::Poll::Ready(Some(Ok(item)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (usize::from(self.count), Some(usize::from(self.count)))
    }
}
