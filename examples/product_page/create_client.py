# The product page, "Create a client".
from crownest import CrowNest

client = CrowNest(
    api_key="cn_live_...",               # or env CROWNEST_API_KEY
    base_url="https://api.crownest.dev", # default
    timeout=660,                         # seconds
)

with CrowNest() as client:
    sandboxes = client.sandboxes.list()
