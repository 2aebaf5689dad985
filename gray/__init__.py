"""The gray release (灰度发布): a router in front of a baseline and a canary build that
serve one database, and the rules that split traffic between them."""
