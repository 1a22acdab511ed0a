//! A one-shot result slot that can be awaited from async code or waited for by a blocking
//! thread, without needing an async runtime (the writer thread completes it).

use std::{
    sync::{Arc, Condvar, Mutex, MutexGuard},
    task::{Context, Poll, Waker},
};

enum State<T> {
    Waiting {
        waker: Option<Waker>,
        /// A thread sleeps on the condvar; only then is it signalled (it costs a syscall).
        blocked: bool,
    },
    Done(T),
    /// The completer was dropped without a value (its thread stopped).
    Abandoned,
    Taken,
}

struct Slot<T> {
    state: Mutex<State<T>>,
    cond: Condvar,
}

impl<T> Slot<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(crate) fn completion<T>() -> (Completer<T>, Completion<T>) {
    let slot = Arc::new(Slot {
        state: Mutex::new(State::Waiting {
            waker: None,
            blocked: false,
        }),
        cond: Condvar::new(),
    });
    (
        Completer {
            slot: slot.clone(),
            done: false,
        },
        Completion { slot },
    )
}

/// The sending side; dropping it without [`Completer::complete`] abandons the slot.
pub(crate) struct Completer<T> {
    slot: Arc<Slot<T>>,
    done: bool,
}

impl<T> Completer<T> {
    pub fn complete(mut self, value: T) {
        self.finish(State::Done(value));
    }

    fn finish(&mut self, new: State<T>) {
        self.done = true;
        let (waker, blocked) = {
            let mut state = self.slot.lock();
            match std::mem::replace(&mut *state, new) {
                State::Waiting { waker, blocked } => (waker, blocked),
                _ => (None, false),
            }
        };
        if blocked {
            self.slot.cond.notify_all();
        }
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> Drop for Completer<T> {
    fn drop(&mut self) {
        if !self.done {
            self.finish(State::Abandoned);
        }
    }
}

/// The receiving side. `None` means the completer was dropped without a value.
pub(crate) struct Completion<T> {
    slot: Arc<Slot<T>>,
}

impl<T> Completion<T> {
    pub fn poll(&self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut state = self.slot.lock();
        if let State::Waiting { waker, .. } = &mut *state {
            match waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => *waker = Some(cx.waker().clone()),
            }
            return Poll::Pending;
        }
        Poll::Ready(take(&mut state))
    }

    pub fn wait(self) -> Option<T> {
        let mut state = self.slot.lock();
        loop {
            match &mut *state {
                State::Waiting { blocked, .. } => {
                    *blocked = true;
                    state = self
                        .slot
                        .cond
                        .wait(state)
                        .unwrap_or_else(|p| p.into_inner());
                }
                _ => return take(&mut state),
            }
        }
    }
}

fn take<T>(state: &mut State<T>) -> Option<T> {
    match std::mem::replace(state, State::Taken) {
        State::Done(value) => Some(value),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_gets_value_from_another_thread() {
        let (tx, rx) = completion::<u32>();
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            tx.complete(7);
        });
        assert_eq!(rx.wait(), Some(7));
        t.join().unwrap();
    }

    #[test]
    fn dropped_completer_abandons() {
        let (tx, rx) = completion::<u32>();
        drop(tx);
        assert_eq!(rx.wait(), None);
    }
}
