//! The limit on tokens per subject and pattern: past it, a typed error naming the limit
//! (never a crash, however long the input); at it, everything works, even on a tokio
//! worker thread with a small stack.

use orch_events::{
    EventBus, MAX_TOKENS, PublishError, SubjectError, SubscribeError, TryPublishErrorKind,
};

/// `count` tokens: `a.a.…` then `last`.
fn tokens(count: usize, last: &str) -> String {
    let mut text = "a.".repeat(count - 1);
    text.push_str(last);
    text
}

/// Runs `test` as a task on a multi-thread runtime whose workers have `stack` bytes.
fn on_a_worker<F: Future<Output = ()> + Send + 'static>(stack: usize, test: F) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(stack)
        .build()
        .expect("runtime");
    runtime
        .block_on(runtime.spawn(test))
        .expect("the test task finished");
}

#[test]
fn a_hundred_thousand_tokens_are_refused_on_a_worker_thread() {
    on_a_worker(2 << 20, async {
        let bus: EventBus<u32> = EventBus::new();
        let long = tokens(100_000, "a");
        let too_many = SubjectError::TooManyTokens {
            tokens: 100_000,
            limit: MAX_TOKENS,
            byte: 2 * MAX_TOKENS,
        };
        for pattern in [long.clone(), format!("{long}.>"), tokens(100_000, "*")] {
            let Err(SubscribeError::InvalidPattern(SubjectError::TooManyTokens { limit, .. })) =
                bus.subscribe(&pattern)
            else {
                panic!("a pattern of 10^5 tokens was not refused for its length");
            };
            assert_eq!(limit, MAX_TOKENS);
        }
        assert_eq!(
            bus.subscribe(&long).err(),
            Some(SubscribeError::InvalidPattern(too_many.clone()))
        );
        assert_eq!(bus.subscription_count(), 0);
        let mut everything = bus.subscribe(">").expect("valid pattern");
        assert_eq!(
            bus.publish(long.as_str(), 1).await,
            Err(PublishError::InvalidSubject(too_many.clone()))
        );
        let refused = bus.try_publish(long.as_str(), 2).expect_err("too long");
        assert_eq!(
            refused.kind(),
            &TryPublishErrorKind::InvalidSubject(too_many.clone())
        );
        assert_eq!(
            too_many.to_string(),
            "subject or pattern has 100000 tokens, more than the limit of 256: \
             token 256 starts at byte 512"
        );
        bus.close().await;
        assert!(everything.recv().await.is_none(), "nothing was published");
    });
}

/// Subscribing, publishing and unsubscribing at the limit needs no stack per token: the
/// workers here have 64 KiB of stack, which a walk recursing once per token overflows.
#[test]
fn patterns_at_the_limit_work_on_a_worker_thread_with_a_small_stack() {
    on_a_worker(64 << 10, async {
        let bus: EventBus<u32> = EventBus::new();
        let patterns = [
            tokens(MAX_TOKENS, "*"),
            tokens(MAX_TOKENS - 1, ">"),
            tokens(MAX_TOKENS, "b"),
            tokens(MAX_TOKENS, "a"),
        ];
        let mut subs: Vec<_> = patterns
            .iter()
            .map(|p| bus.subscribe(p).expect("at the limit"))
            .collect();
        assert!(bus.subscribe(&tokens(MAX_TOKENS + 1, "*")).is_err());
        let seq = bus
            .publish(tokens(MAX_TOKENS, "b"), 1)
            .await
            .expect("at the limit");
        assert!(bus.publish(tokens(MAX_TOKENS + 1, "b"), 2).await.is_err());
        for (sub, gets) in subs.iter_mut().zip([true, true, true, false]) {
            if gets {
                let event = sub.recv_event().await.expect("delivered");
                assert_eq!((event.seq(), *event.payload()), (seq, 1));
            }
        }
        // Unsubscribing prunes 256-node branches.
        drop(subs.drain(1..));
        assert_eq!(bus.subscription_count(), 1);
        bus.publish(tokens(MAX_TOKENS, "a"), 3)
            .await
            .expect("at the limit");
        bus.close().await;
        let mut rest = Vec::new();
        while let Some(event) = subs[0].recv_event().await {
            rest.push(*event.payload());
        }
        assert_eq!(rest, [3]);
    });
}
