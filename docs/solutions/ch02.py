"""Chapter 2 — the computational graph: reference solutions."""


def topological_order(root):
    """Every node reachable from root, each before its inputs (consumers first), without recursion.

    Depth-first search with an explicit stack: a node is appended to ``post``
    once all its inputs are (post-order); reversing gives consumers first.
    """
    post, visited = [], set()
    stack = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:                   # all its inputs are in post already: the node itself can go
            post.append(node)
            continue
        if id(node) in visited:        # reached again along another path: already handled
            continue
        visited.add(id(node))          # marked when expanded, not when pushed (see the exercise's hint)
        stack.append((node, True))     # comes back after everything pushed above it
        if node.grad_fn is not None:
            for inp in node.grad_fn.inputs:
                if inp is not None and id(inp) not in visited:
                    stack.append((inp, False))
    return post[::-1]
