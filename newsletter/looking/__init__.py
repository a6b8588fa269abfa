"""Looking at an issue before and after it is sent: the live preview, pictures of the email, the pull
request review (build, check, pictures), and the web archive."""
