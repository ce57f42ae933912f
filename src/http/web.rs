//! The browser client, embedded in the binary so that a lone `tessera`
//! serves it: a landing page at `/`, the room page at `/r/{room}`, recorded
//! lessons at `/recordings`, and scripts and style under `/static/`.

use warp::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use warp::{Filter, Reply};

const INDEX_HTML: &str = include_str!("../../web/index.html");
const ROOM_HTML: &str = include_str!("../../web/room.html");
const CLIENT_JS: &str = include_str!("../../web/tessera.js");
const STYLE_CSS: &str = include_str!("../../web/style.css");
const RECORDINGS_HTML: &str = include_str!("../../web/recordings.html");
const RECORDINGS_JS: &str = include_str!("../../web/recordings.js");

fn asset(body: &'static str, content_type: &'static str) -> warp::reply::Response {
    let reply = warp::reply::with_header(body, CONTENT_TYPE, content_type);
    // Assets change with the binary; let browsers revalidate.
    warp::reply::with_header(reply, CACHE_CONTROL, "no-cache").into_response()
}

/// Routes of the web client.
pub fn routes() -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone
{
    let index = warp::path::end().map(|| asset(INDEX_HTML, "text/html; charset=utf-8"));
    let room =
        warp::path!("r" / String).map(|_room: String| asset(ROOM_HTML, "text/html; charset=utf-8"));
    let js = warp::path!("static" / "tessera.js")
        .map(|| asset(CLIENT_JS, "text/javascript; charset=utf-8"));
    let css =
        warp::path!("static" / "style.css").map(|| asset(STYLE_CSS, "text/css; charset=utf-8"));
    let recordings =
        warp::path!("recordings").map(|| asset(RECORDINGS_HTML, "text/html; charset=utf-8"));
    let recordings_js = warp::path!("static" / "recordings.js")
        .map(|| asset(RECORDINGS_JS, "text/javascript; charset=utf-8"));
    warp::get().and(
        index
            .or(room)
            .unify()
            .or(js)
            .unify()
            .or(css)
            .unify()
            .or(recordings)
            .unify()
            .or(recordings_js)
            .unify(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pages_and_assets_are_served_with_their_types() {
        let r = routes();
        for (path, ty, needle) in [
            ("/", "text/html", "join-form"),
            ("/r/math-101", "text/html", "/static/tessera.js"),
            ("/static/tessera.js", "text/javascript", "window.tessera"),
            ("/static/style.css", "text/css", "#canvas"),
            ("/recordings", "text/html", "/static/recordings.js"),
            (
                "/static/recordings.js",
                "text/javascript",
                "/api/recordings",
            ),
        ] {
            let res = warp::test::request().path(path).reply(&r).await;
            assert_eq!(res.status(), 200, "{path}");
            let got = res.headers()[CONTENT_TYPE].to_str().unwrap();
            assert!(got.starts_with(ty), "{path}: {got}");
            assert!(
                String::from_utf8_lossy(res.body()).contains(needle),
                "{path}"
            );
        }
        let res = warp::test::request().path("/nope").reply(&r).await;
        assert_eq!(res.status(), 404);
    }
}
