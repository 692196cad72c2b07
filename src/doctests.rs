//! The README and the scenarios in `doctests/`, compiled and run as doctests.

#[doc = include_str!("../README.md")]
pub struct Readme;

#[doc = include_str!("../doctests/locking.md")]
pub struct Locking;

#[doc = include_str!("../doctests/content_template.md")]
pub struct ContentTemplate;
