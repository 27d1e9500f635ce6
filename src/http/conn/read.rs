//! Reading: the request head, then its body (by length, or chunked),
//! into the connection's buffer.

use super::*;

impl<S: Io> Conn<S> {
    pub(super) async fn read_head(&mut self) -> Result<Head, Stop> {
        let config = &self.shared.config;
        let (limits, head_timeout) = (self.shared.prepared.head, config.head_timeout);
        let idle = if self.served == 0 {
            head_timeout
        } else {
            config.keep_alive_timeout
        };
        let idle_deadline = Instant::now() + idle;
        let mut head_deadline = None;
        loop {
            if self.rbuf.len() > self.start {
                match parse_head(&self.rbuf[self.start..], &limits, &mut self.spans) {
                    Ok(Some(head)) => return Ok(head),
                    Ok(None) => {}
                    Err(e) => return Err(Stop::Reply(e.status(), e.message())),
                }
                head_deadline.get_or_insert_with(|| Instant::now() + head_timeout);
            }
            self.flush().await?;
            let pending = self.rbuf.len() > self.start;
            if pending {
                self.make_room();
            } else {
                // Nothing to handle until the client sends more: if the
                // read finds nothing, the buffers go back to the thread's
                // spares meanwhile (`ReadFresh`).
                self.rbuf.clear();
                self.start = 0;
            }
            let deadline = head_deadline.unwrap_or(idle_deadline);
            let shutdown = self
                .shutdown_wait
                .get_or_insert_with(|| ShutdownWait::new(self.shutdown.clone()));
            let read = tokio::select! {
                biased;
                _ = shutdown, if !pending => {
                    // A request the client already sent is answered (503
                    // below), not dropped unread; an idle connection closes.
                    // What is readable right now, without waiting.
                    match self.stream.read_buf(&mut self.rbuf).now_or_never() {
                        Some(Ok(n)) if n > 0 => Some(self.counted_in(Ok(n))),
                        _ => return Err(Stop::Quiet),
                    }
                }
                r = spare::ReadFresh { stream: &mut self.stream, buf: &mut self.rbuf, out: &mut self.wbuf } => Some(self.counted_in(r)),
                () = self.timer.until(deadline) => None,
            };
            match read {
                Some(Ok(0)) | Some(Err(_)) => return Err(Stop::Quiet),
                Some(Ok(_)) => {}
                None if pending => {
                    return Err(Stop::Reply(408, "request head not received in time"));
                }
                None => return Err(Stop::Quiet),
            }
        }
    }

    /// Moves unread bytes to the front and makes sure a read has room.
    pub(super) fn make_room(&mut self) {
        if self.start > 0 {
            self.rbuf.drain(..self.start);
            self.start = 0;
        }
        if self.rbuf.capacity() - self.rbuf.len() < MIN_READ_SPACE {
            self.rbuf.reserve(self.rbuf.len().max(MIN_READ_SPACE));
        }
    }

    /// Marks `n` bytes from `start` as answered.
    pub(super) fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start >= self.rbuf.len() {
            self.rbuf.clear();
            self.start = 0;
            if self.rbuf.capacity() > RETAINED_BUFFER {
                self.rbuf = Vec::with_capacity(INITIAL_READ_BUFFER);
            }
        }
        if self.body.capacity() > RETAINED_BUFFER {
            self.body = Vec::new();
        }
    }

    /// Reads the request's body; with what a large one holds of the bound
    /// on bodies all connections hold at once (given back when dropped).
    pub(super) async fn read_body(&mut self, head: &Head) -> Result<(BodyAt, Option<Held>), Stop> {
        match head.framing {
            Framing::Empty => Ok((BodyAt::None, None)),
            Framing::Length(n) => {
                let max = self.shared.config.max_body_bytes as u64;
                if n > max {
                    return Err(Stop::Reply(413, "request body too large"));
                }
                let n = n as usize;
                let held = if n > LARGE_BODY_BYTES {
                    let mut held = Held::none(&self.shared.bodies);
                    if !held.grow(n) {
                        return Err(Stop::Reply(503, BODIES_FULL));
                    }
                    Some(held)
                } else {
                    None
                };
                Ok((self.read_length_body(head, n).await?, held))
            }
            Framing::Chunked => {
                let mut held = None;
                let at = self.read_chunked_body(head, &mut held).await?;
                Ok((at, held))
            }
        }
    }

    pub(super) async fn read_length_body(&mut self, head: &Head, n: usize) -> Result<BodyAt, Stop> {
        let need = self.start + head.len + n;
        if self.rbuf.len() < need {
            if head.expect == Expect::Continue {
                self.wbuf.extend_from_slice(CONTINUE);
                self.flush().await?;
            }
            self.rbuf.reserve(need - self.rbuf.len());
            while self.rbuf.len() < need {
                self.read_body_bytes().await?;
            }
        }
        Ok(BodyAt::InBuffer(n))
    }

    /// Reads a chunked body; once its decoded bytes pass
    /// [`LARGE_BODY_BYTES`], it holds room in the bound on bodies for them
    /// and for what the next read may add (at least a megabyte more each
    /// time), in `held` (made then: a small body touches no shared count).
    pub(super) async fn read_chunked_body(
        &mut self,
        head: &Head,
        held: &mut Option<Held>,
    ) -> Result<BodyAt, Stop> {
        self.body.clear();
        self.decoder = ChunkedDecoder::new(self.shared.config.max_body_bytes as u64);
        let body_start = self.start + head.len;
        if head.expect == Expect::Continue && self.rbuf.len() == body_start {
            self.wbuf.extend_from_slice(CONTINUE);
            self.flush().await?;
        }
        loop {
            match self
                .decoder
                .decode(&self.rbuf[body_start..], &mut self.body)
            {
                Ok(Some(n)) => {
                    self.rbuf.drain(body_start..body_start + n);
                    return Ok(BodyAt::Decoded);
                }
                Ok(None) => {
                    self.rbuf.truncate(body_start);
                    // A large body holds room for what it has and what
                    // the next read may add.
                    if self.body.len() > LARGE_BODY_BYTES {
                        let holding = self.body.len() + IO_PIECE;
                        let held = held.get_or_insert_with(|| Held::none(&self.shared.bodies));
                        if holding > held.len() && !held.grow((holding - held.len()).max(1 << 20)) {
                            return Err(Stop::Reply(503, BODIES_FULL));
                        }
                    }
                    if self.rbuf.capacity() - self.rbuf.len() < MIN_READ_SPACE {
                        self.rbuf.reserve(INITIAL_READ_BUFFER);
                    }
                    self.read_body_bytes().await?;
                }
                Err(e) => return Err(Stop::Reply(e.status(), e.message())),
            }
        }
    }

    /// One read of body bytes, bounded by the body idle timeout.
    pub(super) async fn read_body_bytes(&mut self) -> Result<(), Stop> {
        let idle = self.shared.config.body_idle_timeout;
        let mut room = bytes::BufMut::limit(&mut self.rbuf, IO_PIECE);
        match timeout(idle, self.stream.read_buf(&mut room))
            .await
            .map(|r| self.counted_in(r))
        {
            Ok(Ok(0)) | Ok(Err(_)) => Err(Stop::Quiet),
            Ok(Ok(n)) => {
                if n == IO_PIECE {
                    // More may be waiting: others get a turn first.
                    crate::util::give_way().await;
                }
                Ok(())
            }
            Err(_) => Err(Stop::Reply(408, "request body not received in time")),
        }
    }
}
