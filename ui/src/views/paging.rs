//! A list shown a page at a time: which page, of how many.

use std::ops::Range;

/// Page `page` (from 1) of `pages`, `per_page` items each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Paging {
    pub page: usize,
    pub pages: usize,
    pub per_page: usize,
}

impl Paging {
    /// The page `asked` (the first when none, the last when past it) of `count` items.
    pub fn of(count: usize, per_page: usize, asked: Option<usize>) -> Self {
        let per_page = per_page.max(1);
        let pages = count.div_ceil(per_page).max(1);
        Self {
            page: asked.unwrap_or(1).clamp(1, pages),
            pages,
            per_page,
        }
    }

    /// The places of the page's items in the list.
    pub fn range(&self) -> Range<usize> {
        let first = (self.page - 1) * self.per_page;
        first..first + self.per_page
    }

    /// The page's part of `items`, the whole list.
    pub fn slice<'a, T>(&self, items: &'a [T]) -> &'a [T] {
        let range = self.range();
        &items[range.start.min(items.len())..range.end.min(items.len())]
    }

    /// The numbers (from 1) of the first and last of the `shown` items on the page; `(0, 0)`
    /// when there are none.
    pub fn shown(&self, shown: usize) -> (usize, usize) {
        if shown == 0 {
            return (0, 0);
        }
        let first = self.range().start;
        (first + 1, first + shown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_past_the_last_is_the_last() {
        let paging = Paging::of(520, 200, Some(9));
        assert_eq!((paging.page, paging.pages), (3, 3));
        assert_eq!(paging.range(), 400..600);
        assert_eq!(paging.shown(120), (401, 520));
        let items: Vec<usize> = (0..520).collect();
        assert_eq!(paging.slice(&items), &items[400..]);
        let empty = Paging::of(0, 200, None);
        assert_eq!((empty.page, empty.pages, empty.shown(0)), (1, 1, (0, 0)));
    }
}
