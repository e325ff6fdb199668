//! A Docker image made present before a container is created from it.

use bollard::Docker;
use bollard::query_parameters::CreateImageOptions;
use futures_util::StreamExt as _;

/// Makes sure `image` is on the daemon, as a Mesos agent does: pulls it when it is absent, or
/// always when `force_pull` (Marathon's `forcePullImage`). A forced pull that fails while a
/// local copy exists uses that copy and logs a warning (a machine without a registry can still
/// run the image it built).
///
/// # Errors
/// The image is absent and cannot be pulled: the pull's error, for the caller to name the
/// daemon and the image.
pub async fn ensure_image(docker: &Docker, image: &str, force_pull: bool) -> Result<(), String> {
    let present = docker.inspect_image(image).await.is_ok();
    if present && !force_pull {
        return Ok(());
    }
    let mut stream = docker.create_image(
        Some(CreateImageOptions {
            from_image: Some(image.to_owned()),
            ..Default::default()
        }),
        None,
        None,
    );
    let mut error = None;
    while let Some(item) = stream.next().await {
        if let Err(e) = item {
            error = Some(e.to_string());
            break;
        }
    }
    match (error, present) {
        (None, _) => Ok(()),
        (Some(e), true) => {
            tracing::warn!("forcePullImage: cannot pull {image} ({e}); using the local image");
            Ok(())
        }
        (Some(e), false) => Err(e),
    }
}
