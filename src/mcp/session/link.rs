//! What a call reaches of its session ([`SessionLink`]), and calls made
//! ready to run on a task of their own.

use super::*;

impl crate::mcp::lazy::ClientInfoSource for Session {
    fn client_info(&self) -> Option<serde_json::Value> {
        Session::client_info(self)
    }
}

impl SessionLink for Session {
    fn transport(&self) -> Option<&'static str> {
        Session::transport(self)
    }

    fn is_read_only(&self) -> bool {
        Session::is_read_only(self)
    }

    fn statement_kinds(&self) -> Option<super::StatementKinds> {
        Session::statement_kinds(self)
    }

    fn principal(&self) -> Option<&str> {
        Session::principal(self)
    }

    fn party(&self) -> Option<&str> {
        Session::party(self)
    }

    fn heavy(&self) -> &Arc<super::super::heavy::HeavyGate> {
        &self.server.0.heavy
    }

    fn client_capabilities(&self) -> Option<serde_json::Value> {
        super::json_of(self.client_capabilities.lock().as_deref())
    }

    fn client_has_capability(&self, capability: &str) -> bool {
        self.client_capabilities()
            .is_some_and(|c| c.get(capability).is_some())
    }

    fn outgoing(&self) -> &Outgoing {
        &self.outgoing
    }

    fn peer(&self) -> Option<&Peer> {
        self.peer.as_ref()
    }

    fn reachable(&self) -> bool {
        !self.one_request
    }

    fn track(&self, id: &crate::mcp::Kept, cancel: tokio::sync::watch::Sender<bool>) {
        self.inflight.lock().insert(id.clone(), cancel);
    }

    fn untrack(&self, id: &str) {
        self.inflight.lock().remove(id);
    }
}

impl Call<'_> {
    /// Copies what the call borrows so it can run on a task of its own, in
    /// `session` (the one that dispatched it).
    pub fn into_owned(self, session: &Arc<Session>) -> super::super::call::OwnedCall {
        let link: Arc<dyn SessionLink> = Arc::clone(session) as Arc<dyn SessionLink>;
        self.own(link, session.server.clone())
    }
}
