//! Where the window was, and where it may go back at the next start: the size and position
//! the shell saves on move and resize, and the rule that brings a saved place back onto a
//! monitor that is connected now (a laptop undocked, a resolution lowered).
//!
//! All in physical pixels, as the OS reports them; the position is the window's outer
//! top-left corner, the size its inner size.

use serde::{Deserialize, Serialize};

/// A window's place on the desktop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowPlace {
    /// Left edge.
    pub x: i32,
    /// Top edge.
    pub y: i32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

/// A monitor's usable area (its work area when the OS gives one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Screen {
    /// Left edge.
    pub x: i32,
    /// Top edge.
    pub y: i32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

impl WindowPlace {
    fn overlap(&self, screen: &Screen) -> u64 {
        let span = |start: i32, len: u32, other: i32, other_len: u32| -> u64 {
            let end = i64::from(start) + i64::from(len);
            let other_end = i64::from(other) + i64::from(other_len);
            let width = end.min(other_end) - i64::from(start).max(i64::from(other));
            u64::try_from(width).unwrap_or(0)
        };
        span(self.x, self.width, screen.x, screen.width)
            * span(self.y, self.height, screen.y, screen.height)
    }

    /// The place to restore `self` to on `screens`: on the monitor it overlaps most (the
    /// first one when it overlaps none), shrunk to fit that monitor (never below `min`,
    /// unless the monitor is smaller) and moved the least so that it lies wholly on it.
    /// `None` when there is no monitor, or the saved size is empty (not a real save).
    pub fn onto(self, screens: &[Screen], min: (u32, u32)) -> Option<WindowPlace> {
        if self.width == 0 || self.height == 0 {
            return None;
        }
        let screen = screens
            .iter()
            .enumerate()
            .max_by_key(|(index, screen)| (self.overlap(screen), std::cmp::Reverse(*index)))
            .map(|(_, screen)| *screen)?;
        let fit = |len: u32, min: u32, room: u32| len.max(min).min(room);
        let width = fit(self.width, min.0, screen.width);
        let height = fit(self.height, min.1, screen.height);
        let place = |at: i32, len: u32, start: i32, room: u32| -> i32 {
            let last = i64::from(start) + i64::from(room) - i64::from(len);
            let at = i64::from(at).clamp(i64::from(start), last.max(i64::from(start)));
            i32::try_from(at).unwrap_or(start)
        };
        Some(WindowPlace {
            x: place(self.x, width, screen.x, screen.width),
            y: place(self.y, height, screen.y, screen.height),
            width,
            height,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAPTOP: Screen = Screen {
        x: 0,
        y: 0,
        width: 1920,
        height: 1080,
    };
    const RIGHT: Screen = Screen {
        x: 1920,
        y: 0,
        width: 2560,
        height: 1440,
    };
    const MIN: (u32, u32) = (480, 420);

    fn place(x: i32, y: i32, width: u32, height: u32) -> WindowPlace {
        WindowPlace {
            x,
            y,
            width,
            height,
        }
    }

    #[test]
    fn a_place_on_a_connected_monitor_comes_back_as_it_was() {
        let saved = place(2100, 200, 900, 700);
        assert_eq!(saved.onto(&[LAPTOP, RIGHT], MIN), Some(saved));
        let saved = place(10, 20, 760, 600);
        assert_eq!(saved.onto(&[LAPTOP, RIGHT], MIN), Some(saved));
    }

    #[test]
    fn a_place_on_an_unplugged_monitor_moves_to_the_first_one() {
        let saved = place(2100, 200, 900, 700);
        assert_eq!(saved.onto(&[LAPTOP], MIN), Some(place(1020, 200, 900, 700)));
        // Far away, above and to the left: moved to the nearest corner.
        let saved = place(-5000, -300, 760, 600);
        assert_eq!(saved.onto(&[LAPTOP], MIN), Some(place(0, 0, 760, 600)));
    }

    #[test]
    fn a_window_across_two_monitors_goes_to_the_one_it_covers_most() {
        let saved = place(1700, 100, 1000, 600);
        assert_eq!(
            saved.onto(&[LAPTOP, RIGHT], MIN),
            Some(place(1920, 100, 1000, 600))
        );
    }

    #[test]
    fn a_window_larger_than_the_monitor_shrinks_to_fit_it() {
        let saved = place(-10, -10, 2560, 1440);
        assert_eq!(saved.onto(&[LAPTOP], MIN), Some(place(0, 0, 1920, 1080)));
        let tiny_screen = Screen {
            x: 0,
            y: 0,
            width: 400,
            height: 300,
        };
        assert_eq!(
            place(0, 0, 760, 600).onto(&[tiny_screen], MIN),
            Some(place(0, 0, 400, 300))
        );
    }

    #[test]
    fn a_window_below_the_minimum_grows_to_it() {
        assert_eq!(
            place(100, 100, 10, 10).onto(&[LAPTOP], MIN),
            Some(place(100, 100, 480, 420))
        );
    }

    #[test]
    fn no_monitor_or_an_empty_size_restores_nothing() {
        assert_eq!(place(0, 0, 760, 600).onto(&[], MIN), None);
        assert_eq!(place(0, 0, 0, 600).onto(&[LAPTOP], MIN), None);
    }

    #[test]
    fn extreme_coordinates_do_not_overflow() {
        let saved = place(i32::MAX, i32::MIN, u32::MAX, u32::MAX);
        assert_eq!(saved.onto(&[LAPTOP], MIN), Some(place(0, 0, 1920, 1080)));
    }
}
