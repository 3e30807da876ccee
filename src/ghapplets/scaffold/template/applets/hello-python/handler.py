"""Thank the author of every newly opened issue (an example Ghapplets applet)."""

from typing import Any

from ghapplets import Applet, Context

app = Applet("hello-python")


@app.on("com.github.issues.opened")
async def thank_author(ctx: Context) -> dict[str, Any]:
    issue, repo = ctx.data["issue"], ctx.data["repository"]
    author = issue["user"]["login"]
    ctx.log.info("new issue", number=issue["number"], author=author)
    # as the GitHub App's installation the webhook came from; a retry reuses the same job id,
    # so a comment posted by a failed attempt's earlier try is GitHub's to deduplicate
    comment = await ctx.action(
        "github.create_comment",
        {
            "owner": repo["owner"]["login"],
            "repo": repo["name"],
            "issue_number": issue["number"],
            "body": f"Thanks @{author} for opening #{issue['number']}: {issue['title']}",
        },
    )
    return {"comment": comment["html_url"]}
