"""The caseworkers' web application: pages rendered on the server, in the API's process."""
