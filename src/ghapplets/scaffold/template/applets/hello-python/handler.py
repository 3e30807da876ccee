"""Thank the author of every newly opened issue (an example Ghapplets applet)."""

from ghapplets import Applet, Context

app = Applet("hello-python")


@app.on("com.github.issues.opened")
async def thank_author(ctx: Context) -> dict[str, str]:
    issue = ctx.data["issue"]
    author = issue["user"]["login"]
    ctx.log.info("new issue", number=issue["number"], author=author)
    return {"comment": f"Thanks @{author} for opening #{issue['number']}: {issue['title']}"}
