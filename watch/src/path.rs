//! Walking a znode path up to the root, as ZooKeeper's `PathParentIterator` and
//! `DataTree` do.

/// The parent of `path` as `DataTree` computes it: the text before the last `/`, or `/`
/// when that text is empty. `None` for `/` itself and for a string with no `/` at all.
pub(crate) fn parent(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    let slash = path.rfind('/')?;
    if slash == 0 {
        Some("/")
    } else {
        path.get(..slash)
    }
}

/// `path`, then each of its ancestors up to `/`, as `PathParentIterator.forAll` yields them.
/// Nothing for the empty string.
pub(crate) fn path_and_ancestors(path: &str) -> impl Iterator<Item = &str> {
    let first = (!path.is_empty()).then_some(path);
    std::iter::successors(first, |p| parent(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_as_datatree_computes_them() {
        assert_eq!(parent("/a/b/c"), Some("/a/b"));
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/"), None);
        assert_eq!(parent("a"), None);
        assert_eq!(parent("/a/"), Some("/a"));
    }

    #[test]
    fn walks_to_the_root() {
        let walk: Vec<_> = path_and_ancestors("/a/b/c").collect();
        assert_eq!(walk, ["/a/b/c", "/a/b", "/a", "/"]);
        assert_eq!(path_and_ancestors("/").collect::<Vec<_>>(), ["/"]);
        assert_eq!(path_and_ancestors("").count(), 0);
        assert_eq!(path_and_ancestors("x").collect::<Vec<_>>(), ["x"]);
    }
}
