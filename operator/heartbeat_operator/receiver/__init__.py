"""The ping receiver: an aiohttp application (app factory, route table, middlewares, views).

Views turn HTTP requests into domain pings and recorder outcomes into HTTP responses;
nothing here talks to Kubernetes directly.
"""
