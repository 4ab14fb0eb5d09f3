"""Tiny helper to author notebooks: md(...), code(..., tags=[...])."""
import nbformat

def md(src):
    return nbformat.v4.new_markdown_cell(src.strip("\n"))

def code(src, tags=None):
    c = nbformat.v4.new_code_cell(src.strip("\n"))
    if tags:
        c.metadata["tags"] = list(tags)
    return c

def save(cells, path):
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    nb.metadata = {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
                   "language_info": {"name": "python", "pygments_lexer": "ipython3"}}
    nbformat.write(nb, path)
