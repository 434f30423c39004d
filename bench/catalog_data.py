"""A 1,000-tool catalog for bench/catalog_bench.py: 50 tools written out, each with a task a user
might give (worded differently from the tool's own description), and 950 generated tools from the
same services, verbs and words, so the search has near misses to get past."""

from __future__ import annotations

import itertools
from typing import Any

# (server, tool, description, arguments, the task a scripted model searches for)
NAMED: list[tuple[str, str, str, list[str], str]] = [
    (
        "weather",
        "get_forecast",
        "Get the weather forecast for a location.",
        ["city", "days"],
        "will it rain in Oslo tomorrow",
    ),
    (
        "github",
        "create_pull_request",
        "Create a new pull request in a GitHub repository.",
        ["owner", "repo", "title", "head", "base"],
        "open a pull request for my branch",
    ),
    (
        "github",
        "list_issues",
        "List issues in a GitHub repository, filtered by state and labels.",
        ["owner", "repo", "state", "labels"],
        "show the open issues of the repo",
    ),
    (
        "github",
        "merge_pull_request",
        "Merge a pull request.",
        ["owner", "repo", "pull_number", "merge_method"],
        "merge PR 42 with squash",
    ),
    (
        "slack",
        "post_message",
        "Post a message to a Slack channel.",
        ["channel", "text"],
        "send a note to the team slack channel",
    ),
    (
        "slack",
        "list_channels",
        "List public channels in the Slack workspace.",
        ["limit", "cursor"],
        "which slack channels exist",
    ),
    (
        "gmail",
        "send_email",
        "Send an email message from the user's Gmail account.",
        ["to", "subject", "body"],
        "email Alice the meeting notes",
    ),
    (
        "gmail",
        "search_emails",
        "Search emails with Gmail query syntax.",
        ["query", "max_results"],
        "find the mail from my bank last week",
    ),
    (
        "gcal",
        "create_event",
        "Create an event in Google Calendar.",
        ["summary", "start", "end", "attendees"],
        "schedule a meeting with Bob on Friday at 3pm",
    ),
    (
        "gcal",
        "list_events",
        "List upcoming calendar events.",
        ["time_min", "time_max"],
        "what is on my calendar today",
    ),
    (
        "gdrive",
        "upload_file",
        "Upload a file to Google Drive.",
        ["name", "content", "folder_id"],
        "put this report into my drive folder",
    ),
    (
        "postgres",
        "run_query",
        "Run a read-only SQL query against the PostgreSQL database.",
        ["sql"],
        "count the rows of the users table with SQL",
    ),
    (
        "postgres",
        "describe_table",
        "Show the columns and types of a database table.",
        ["table"],
        "what columns does the orders table have",
    ),
    (
        "k8s",
        "get_pod_logs",
        "Fetch the logs of a Kubernetes pod.",
        ["namespace", "pod", "tail_lines"],
        "why is the api pod crashing, show its logs",
    ),
    (
        "k8s",
        "scale_deployment",
        "Scale a Kubernetes deployment to a number of replicas.",
        ["namespace", "deployment", "replicas"],
        "run five replicas of the web deployment",
    ),
    (
        "docker",
        "list_containers",
        "List Docker containers and their status.",
        ["all"],
        "which docker containers are running",
    ),
    (
        "stripe",
        "create_refund",
        "Refund a Stripe charge, fully or partly.",
        ["charge_id", "amount"],
        "give the customer their money back for charge ch_123",
    ),
    (
        "stripe",
        "list_invoices",
        "List Stripe invoices for a customer.",
        ["customer_id", "status"],
        "show unpaid invoices of customer cus_9",
    ),
    (
        "notion",
        "create_page",
        "Create a page in a Notion database.",
        ["database_id", "title", "content"],
        "add a new notion page for the retro",
    ),
    (
        "jira",
        "transition_issue",
        "Move a Jira issue to another workflow status.",
        ["issue_key", "transition"],
        "mark PROJ-7 as done in jira",
    ),
    (
        "jira",
        "create_issue",
        "Create a Jira issue in a project.",
        ["project", "summary", "issue_type"],
        "file a bug ticket in jira for the login crash",
    ),
    (
        "sentry",
        "list_errors",
        "List recent error events reported to Sentry for a project.",
        ["project", "since"],
        "what exceptions did production throw today",
    ),
    (
        "pagerduty",
        "acknowledge_incident",
        "Acknowledge a PagerDuty incident.",
        ["incident_id"],
        "ack the page I just got",
    ),
    (
        "datadog",
        "query_metrics",
        "Query Datadog time-series metrics.",
        ["query", "from", "to"],
        "graph the cpu usage of the web hosts for the last hour",
    ),
    (
        "s3",
        "list_objects",
        "List objects in an S3 bucket under a prefix.",
        ["bucket", "prefix"],
        "what files are in the backups bucket",
    ),
    (
        "s3",
        "generate_presigned_url",
        "Generate a presigned URL to download an S3 object.",
        ["bucket", "key", "expires_in"],
        "make a temporary download link for the backup archive",
    ),
    (
        "redis",
        "get_key",
        "Get the value stored at a Redis key.",
        ["key"],
        "read the cached value of session:42",
    ),
    (
        "twilio",
        "send_sms",
        "Send an SMS text message with Twilio.",
        ["to", "body"],
        "text my phone that the deploy finished",
    ),
    (
        "shopify",
        "update_inventory",
        "Set the inventory level of a product variant in Shopify.",
        ["variant_id", "quantity"],
        "we have 30 blue mugs in stock now",
    ),
    (
        "zendesk",
        "reply_ticket",
        "Add a public reply to a Zendesk support ticket.",
        ["ticket_id", "body"],
        "answer the customer's support request 881",
    ),
    (
        "hubspot",
        "create_contact",
        "Create a contact in HubSpot CRM.",
        ["email", "first_name", "last_name"],
        "add Jane Doe jane@example.com to the crm",
    ),
    (
        "figma",
        "get_comments",
        "List the comments on a Figma file.",
        ["file_key"],
        "what feedback did designers leave on the mockup",
    ),
    (
        "confluence",
        "search_pages",
        "Search Confluence pages by text.",
        ["cql", "limit"],
        "find the wiki page about onboarding",
    ),
    (
        "linear",
        "assign_issue",
        "Assign a Linear issue to a team member.",
        ["issue_id", "assignee"],
        "give ENG-12 to Carol",
    ),
    (
        "translate",
        "translate_text",
        "Translate text between languages.",
        ["text", "source", "target"],
        "say this sentence in German",
    ),
    (
        "maps",
        "get_directions",
        "Get driving, walking or transit directions between two places.",
        ["origin", "destination", "mode"],
        "how do I get from the station to the airport",
    ),
    (
        "finance",
        "get_stock_quote",
        "Get the latest stock price for a ticker symbol.",
        ["symbol"],
        "how much is AAPL trading at",
    ),
    (
        "currency",
        "convert_currency",
        "Convert an amount between currencies at today's rate.",
        ["amount", "from", "to"],
        "how many euros is 100 dollars",
    ),
    (
        "dns",
        "lookup_record",
        "Look up DNS records of a domain.",
        ["domain", "type"],
        "what is the MX record of example.com",
    ),
    (
        "ssl",
        "check_certificate",
        "Check a host's TLS certificate and when it expires.",
        ["host"],
        "when does our https certificate expire",
    ),
    (
        "git",
        "blame_file",
        "Show which commit last changed each line of a file.",
        ["path"],
        "who wrote this line in main.py",
    ),
    (
        "npm",
        "package_info",
        "Show an npm package's latest version, license and dependencies.",
        ["name"],
        "what is the newest version of react",
    ),
    (
        "pypi",
        "package_info",
        "Show a PyPI package's releases and metadata.",
        ["name"],
        "which python versions does requests support",
    ),
    (
        "timezone",
        "convert_time",
        "Convert a time between time zones.",
        ["time", "from_zone", "to_zone"],
        "what time is 9am in Tokyo for me in Berlin",
    ),
    (
        "pdf",
        "extract_text",
        "Extract the text of a PDF document.",
        ["path", "pages"],
        "read the contract pdf and give me its text",
    ),
    (
        "image",
        "resize_image",
        "Resize an image to given dimensions.",
        ["path", "width", "height"],
        "make the logo 200 pixels wide",
    ),
    (
        "spotify",
        "play_track",
        "Start playing a track on the user's Spotify device.",
        ["track_uri", "device_id"],
        "play some music",
    ),
    (
        "youtube",
        "get_transcript",
        "Get the transcript of a YouTube video.",
        ["video_id", "language"],
        "what is said in this video",
    ),
    (
        "calculator",
        "evaluate",
        "Evaluate a mathematical expression.",
        ["expression"],
        "what is 17 percent of 2350",
    ),
    (
        "hackernews",
        "top_stories",
        "Get the current top stories on Hacker News.",
        ["limit"],
        "what is trending on hacker news",
    ),
]

SERVICES = [
    "github",
    "gitlab",
    "jira",
    "linear",
    "slack",
    "discord",
    "gmail",
    "outlook",
    "gcal",
    "gdrive",
    "dropbox",
    "s3",
    "postgres",
    "mysql",
    "redis",
    "k8s",
    "docker",
    "stripe",
    "notion",
    "confluence",
    "sentry",
    "datadog",
    "pagerduty",
    "twilio",
    "shopify",
    "hubspot",
    "zendesk",
    "figma",
    "asana",
    "trello",
]
VERBS = ["list", "get", "create", "update", "delete", "archive", "export", "search"]
OBJECTS = [
    ("webhook", "webhooks that notify external URLs"),
    ("member", "members of the team or organisation"),
    ("label", "labels used to tag records"),
    ("audit_log", "audit log entries of administrative actions"),
    ("api_key", "API keys of the account"),
    ("template", "reusable templates"),
    ("report", "usage reports"),
    ("setting", "account settings"),
    ("attachment", "files attached to records"),
    ("group", "groups of users and their permissions"),
]
ARGS = ["id", "workspace", "page_size", "cursor", "filter", "sort", "include_archived", "fields"]


def catalog(size: int = 1000) -> list[dict[str, Any]]:  # at least the named ones
    """Tools as the agent offers them (``server__tool``), the named ones first."""
    tools = [
        {
            "name": f"{server}__{tool}",
            "server": server,
            "description": description,
            "input_schema": {
                "type": "object",
                "properties": {arg: {"type": "string"} for arg in arguments},
                "required": arguments[:1],
            },
        }
        for server, tool, description, arguments, _ in NAMED
    ]
    for index, (server, verb, (obj, what)) in enumerate(itertools.product(SERVICES, VERBS, OBJECTS)):
        if len(tools) >= size:
            break
        arguments = [f"{obj}_id", *ARGS[index % 4 : index % 4 + 4]]
        tools.append(
            {
                "name": f"{server}__{verb}_{obj}",
                "server": server,
                "description": f"{verb.capitalize()} the {what} in {server}. "
                f"Returns JSON; paginate with cursor and page_size.",
                "input_schema": {
                    "type": "object",
                    "properties": {
                        arg: {"type": "string", "description": f"the {arg.replace('_', ' ')}"}
                        for arg in arguments
                    },
                },
            }
        )
    assert len(tools) == size, f"the generator made {len(tools)} tools, not {size}"
    return tools


TASKS: list[tuple[str, str]] = [(task, f"{server}__{tool}") for server, tool, _, _, task in NAMED]

# What a model asked to "search by what the tool should do, in a few words" would send for each
# task, in the same order: plain words, not the tool's own description.
QUERIES: list[str] = [
    "weather forecast for a city",
    "create a pull request",
    "list open issues in a repository",
    "merge a pull request",
    "post a message to a chat channel",
    "list chat channels",
    "send an email",
    "search my email inbox",
    "create a calendar event or meeting",
    "list calendar events for today",
    "upload a file to cloud drive",
    "run a SQL query",
    "show a database table's columns",
    "kubernetes pod logs",
    "scale a deployment's replicas",
    "list running containers",
    "refund a payment",
    "list unpaid invoices of a customer",
    "create a notion page",
    "change the status of a jira issue",
    "create a jira ticket for a bug",
    "recent errors and exceptions in production",
    "acknowledge an incident alert",
    "query cpu metrics over time",
    "list files in a storage bucket",
    "temporary download link for a stored file",
    "read a value from the cache by key",
    "send a text message to a phone",
    "set a product's stock quantity",
    "reply to a support ticket",
    "add a contact to the CRM",
    "comments on a design file",
    "search the wiki",
    "assign an issue to someone",
    "translate text into another language",
    "directions from one place to another",
    "current stock price of a ticker",
    "convert money between currencies",
    "DNS records of a domain",
    "when does a TLS certificate expire",
    "who last changed each line of a file",
    "latest version of an npm package",
    "python package releases and metadata",
    "convert a time to another time zone",
    "extract the text of a PDF",
    "resize an image",
    "play a song",
    "transcript of a video",
    "calculate a math expression",
    "top stories on hacker news",
]
assert len(QUERIES) == len(TASKS)
